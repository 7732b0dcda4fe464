package handlers

import (
	"net/http/pprof"

	"github.com/go-chi/chi/v5"
)

// pprofRoutes serves Go's runtime profiles (BOTD_ADMIN_PPROF): the index,
// the named profiles (heap, goroutine, allocs, block, mutex, threadcreate)
// and the CPU profile and execution trace, which take ?seconds=N.
func pprofRoutes(r chi.Router) {
	r.Route("/debug/pprof", func(r chi.Router) {
		r.Get("/", pprof.Index)
		r.Get("/cmdline", pprof.Cmdline)
		r.Get("/profile", pprof.Profile)
		r.Get("/symbol", pprof.Symbol)
		r.Post("/symbol", pprof.Symbol)
		r.Get("/trace", pprof.Trace)
		r.Get("/{profile}", pprof.Index)
	})
}
