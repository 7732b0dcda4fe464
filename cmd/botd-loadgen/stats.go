package main

import "time"

type pcts struct{ p50, p90, p99, p999, max time.Duration }

// quantile returns the nearest-rank q-quantile of sorted samples: the
// smallest sample with at least q of all samples at or below it.
func quantile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(q*float64(n) + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

func percentiles(sorted []time.Duration) pcts {
	if len(sorted) == 0 {
		return pcts{}
	}
	return pcts{
		p50:  quantile(sorted, 0.50),
		p90:  quantile(sorted, 0.90),
		p99:  quantile(sorted, 0.99),
		p999: quantile(sorted, 0.999),
		max:  sorted[len(sorted)-1],
	}
}
