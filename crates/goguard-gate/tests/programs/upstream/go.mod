module goguard.test/upstream

go 1.24
