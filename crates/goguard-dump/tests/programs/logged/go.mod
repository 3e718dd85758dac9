module logged

go 1.22
