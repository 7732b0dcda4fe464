package handlers

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/botd/botd/internal/callstate"
	"github.com/botd/botd/internal/problem"
)

// maxPage is the most items a list answers at once, and its default: a
// client asks for fewer with Graph's $top, and follows @odata.nextLink for
// the rest.
const maxPage = 1000

// listReply is Graph's collection shape.
type listReply[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"@odata.nextLink,omitempty"`
}

// pageSize reads $top: 1 to maxPage, default maxPage.
func pageSize(r *http.Request) (int, error) {
	v := r.URL.Query().Get("$top")
	if v == "" {
		return maxPage, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPage {
		return 0, errorf(problem.Invalid, `"$top" must be a whole number from 1 to %d, got %q`, maxPage, problem.Shorten(v))
	}
	return n, nil
}

// nextLink is the link to the page after the one that ends with last; it
// keeps the request's other query parameters (a list's filters).
func nextLink(r *http.Request, top int, token string) string {
	q := r.URL.Query()
	q.Set("$top", strconv.Itoa(top))
	q.Set("$skiptoken", token)
	return r.URL.Path + "?" + q.Encode()
}

// callsPage is one page of the calls list (oldest first, ties by id). The
// $skiptoken names the last call of the previous page by creation time
// and id, so a call swept or added meanwhile shifts nothing.
func callsPage(r *http.Request, all []callstate.CallSummary) (listReply[callstate.CallSummary], error) {
	top, err := pageSize(r)
	if err != nil {
		return listReply[callstate.CallSummary]{}, err
	}
	start := 0
	if tok := r.URL.Query().Get("$skiptoken"); tok != "" {
		at, id, ok := parseCallToken(tok)
		if !ok {
			return listReply[callstate.CallSummary]{}, errorf(problem.Invalid, `"$skiptoken" is not one this list gave`)
		}
		for start < len(all) && !after(all[start], at, id) {
			start++
		}
	}
	end := min(start+top, len(all))
	out := listReply[callstate.CallSummary]{Value: append([]callstate.CallSummary{}, all[start:end]...)}
	if end < len(all) {
		last := all[end-1]
		out.NextLink = nextLink(r, top, callToken(last.CreatedAt, last.ID))
	}
	return out, nil
}

// after reports whether c sorts after the call created at with id.
func after(c callstate.CallSummary, at time.Time, id string) bool {
	return c.CreatedAt.After(at) || (c.CreatedAt.Equal(at) && c.ID > id)
}

func callToken(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixNano(), 10) + "_" + id))
}

func parseCallToken(tok string) (time.Time, string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return time.Time{}, "", false
	}
	ns, id, ok := strings.Cut(string(b), "_")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", false
	}
	return time.Unix(0, n), id, true
}

// indexPage is one page of a list held in a fixed order (a call's
// roster), by position: $skiptoken is the position to start at.
func indexPage[T any](r *http.Request, all []T) (listReply[T], error) {
	top, err := pageSize(r)
	if err != nil {
		return listReply[T]{}, err
	}
	start := 0
	if tok := r.URL.Query().Get("$skiptoken"); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 {
			return listReply[T]{}, errorf(problem.Invalid, `"$skiptoken" is not one this list gave`)
		}
		start = min(n, len(all))
	}
	end := min(start+top, len(all))
	out := listReply[T]{Value: append([]T{}, all[start:end]...)}
	if end < len(all) {
		out.NextLink = nextLink(r, top, strconv.Itoa(end))
	}
	return out, nil
}
