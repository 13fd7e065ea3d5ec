//go:build !unix

package bench

import "time"

// processCPU is not measured here: the cpu-µs metrics read 0.
func processCPU() time.Duration { return 0 }
