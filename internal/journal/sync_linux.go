package journal

import (
	"os"
	"syscall"
)

// syncData makes what was written to f durable: its data and the length
// it grew to (fdatasync, as bbolt syncs its file on Linux).
func syncData(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
