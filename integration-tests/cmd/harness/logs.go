package main

// GET /containerLogs/{ns}/{pod}/{container}: serves the plain-text file
// <run-dir>/kubelet/logs/<ns>/<pod>/<container>.log. Tests may append lines to
// that file themselves (KUBELET_LOG_DIR); followers see them.
//
// Lines carry no time of their own, so for timestamps/sinceSeconds/sinceTime
// the lines already in the file count as written at the file's mtime, and
// lines picked up while following as written when they were read.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

func (k *kubelet) logs(w http.ResponseWriter, r *http.Request) {
	p, ok := k.lookup(w, r)
	if !ok {
		return
	}
	container := r.PathValue("container")
	q := r.URL.Query()
	if q.Get("previous") == "true" {
		http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", container, p.name), http.StatusBadRequest)
		return
	}
	follow, timestamps := q.Get("follow") == "true", q.Get("timestamps") == "true"
	tail, limit := int64(-1), int64(-1)
	if v := q.Get("tailLines"); v != "" {
		tail, _ = strconv.ParseInt(v, 10, 64)
	}
	if v := q.Get("limitBytes"); v != "" {
		limit, _ = strconv.ParseInt(v, 10, 64)
	}
	var since time.Time
	if v := q.Get("sinceSeconds"); v != "" {
		s, _ := strconv.ParseInt(v, 10, 64)
		since = time.Now().Add(-time.Duration(s) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		since, _ = time.Parse(time.RFC3339, v)
	}

	f, err := os.Open(k.h.logPath(p.ns, p.name, container))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	data, err := io.ReadAll(f)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// An unterminated last line is held back while following (more of it
	// may come); otherwise it is sent as is.
	var pending []byte
	if follow {
		if i := bytes.LastIndexByte(data, '\n'); i+1 < len(data) {
			data, pending = data[:i+1], append([]byte(nil), data[i+1:]...)
		}
	}
	lines := splitLines(data)
	if !since.IsZero() && st.ModTime().Before(since) {
		lines = nil
	}
	if tail >= 0 && int64(len(lines)) > tail {
		lines = lines[int64(len(lines))-tail:]
	}

	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// stream=Stderr: everything here is stdout.
	if q.Get("stream") == "Stderr" {
		return
	}
	emit := func(line []byte, at time.Time) bool {
		if timestamps {
			line = append([]byte(at.UTC().Format(time.RFC3339Nano)+" "), line...)
		}
		if limit >= 0 {
			if limit == 0 {
				return false
			}
			if int64(len(line)) > limit {
				line = line[:limit]
			}
			limit -= int64(len(line))
		}
		if _, err := w.Write(line); err != nil {
			return false
		}
		rc.Flush()
		return limit != 0
	}
	for _, l := range lines {
		if !emit(l, st.ModTime()) {
			return
		}
	}
	if follow {
		followFile(r.Context(), p.gone, f, pending, func(l []byte) bool { return emit(l, time.Now()) })
	}
}

// splitLines splits after each '\n', keeping it.
func splitLines(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return append(out, data)
		}
		out = append(out, data[:i+1])
		data = data[i+1:]
	}
	return out
}

// followFile polls f from its current offset and hands each complete new line
// to emit, until ctx ends, emit returns false, or gone closes (the pod was
// deleted: its container "exited", so the stream ends as with a real kubelet).
func followFile(ctx context.Context, gone <-chan struct{}, f *os.File, pending []byte, emit func([]byte) bool) {
	buf := make([]byte, 32*1024)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for { // drain what is there now
			n, err := f.Read(buf)
			pending = append(pending, buf[:n]...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				if !emit(pending[:i+1]) {
					return
				}
				pending = pending[i+1:]
			}
			if err != nil || n == 0 {
				break
			}
		}
		// A truncated file (a test reset it) is read again from the start.
		if off, err := f.Seek(0, io.SeekCurrent); err == nil {
			if st, err := f.Stat(); err == nil && st.Size() < off {
				f.Seek(0, io.SeekStart)
				pending = pending[:0]
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-gone:
			return
		case <-tick.C:
		}
	}
}
