other.go
