module loadsim

go 1.22
