module traced

go 1.22
