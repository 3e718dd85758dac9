module racytest

go 1.22
