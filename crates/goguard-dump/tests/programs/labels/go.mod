module labels

go 1.22
