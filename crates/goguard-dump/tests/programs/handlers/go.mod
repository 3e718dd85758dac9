module handlers

go 1.22
