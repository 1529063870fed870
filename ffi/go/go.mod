module atomic-map.local/go

go 1.19
