module example.com/reference

// go 1.22: the Go version the reference's timer claims were written for. Change it to 1.23+
// and G103/G201 change verdict (see `goguard explain G103`).
go 1.22
