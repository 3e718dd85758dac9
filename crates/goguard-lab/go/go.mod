module goguardlab

go 1.22
