module github.com/lazylayer/lazylayer

go 1.25

require (
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
)
