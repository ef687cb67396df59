module github.com/lazylayer/lazylayer/interop

go 1.25

replace github.com/lazylayer/lazylayer => ../
