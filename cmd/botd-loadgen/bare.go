package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/botd/botd/internal/notify"
)

// bareHandler is the ceiling botd is compared with: a chi router whose
// POST /api/calls reads the body and answers 202, nothing else.
func bareHandler() http.Handler {
	r := chi.NewRouter()
	r.Post("/api/calls", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	})
	return r
}

// decodeHandler is the bare handler that also decodes the body with
// botd's decoder (internal/notify, its default limits) and answers 400
// to a body it refuses: what no botd callback can cost less than, for the
// ceiling comparison (scripts/bench-webhook.sh, DECODE=1).
func decodeHandler() http.Handler {
	dec := notify.NewDecoder(notify.DefaultLimits())
	bufs := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	r := chi.NewRouter()
	r.Post("/api/calls", func(w http.ResponseWriter, r *http.Request) {
		buf := bufs.Get().(*bytes.Buffer)
		defer bufs.Put(buf)
		buf.Reset()
		if _, err := buf.ReadFrom(r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if _, err := dec.Decode(buf.Bytes()); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	return r
}

// serveBare serves h (bareHandler or decodeHandler) on addr until ctx
// ends.
func serveBare(ctx context.Context, addr string, h http.Handler, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "bare chi server on http://%s/api/calls\n", ln.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
