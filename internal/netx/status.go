package netx

import "net/http"

// StatusWriter remembers the status a handler wrote (200 when it wrote a
// body with no header first, 0 when it wrote nothing) and the bytes of the
// body, for a log line or a metric.
type StatusWriter struct {
	http.ResponseWriter
	Status int
	Bytes  int
}

// Unwrap lets http.ResponseController reach the connection (Flush for a
// server-sent event stream).
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *StatusWriter) WriteHeader(code int) {
	if w.Status == 0 {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.Bytes += n
	return n, err
}

// Code is the status the client got: Status, or 200 when the handler wrote
// nothing (net/http then answers 200).
func (w *StatusWriter) Code() int {
	if w.Status == 0 {
		return http.StatusOK
	}
	return w.Status
}
