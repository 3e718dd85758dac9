module cleantest

go 1.22
