module goguard.test/redisapp

go 1.24
