homework.go
