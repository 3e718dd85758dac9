module goguard.local/bench/cache

go 1.22
