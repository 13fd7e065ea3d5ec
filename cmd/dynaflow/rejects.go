package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/dynaflow-go/dynaflow"
)

// rejects is the file of what could not be written: one ddb line each, {"Item":...} with "error"
// and "line" beside it, or "raw" (the input as read) for a line that did not parse. It loads again
// as it is: the ddb reader ignores "error" and "line". The file is made at the first reject.
type rejects struct {
	mu     sync.Mutex
	path   string
	at     int64 // the length to start from (a resumed run's)
	f      *os.File
	bw     *bufio.Writer
	n      int64 // rejects this run
	length int64 // bytes in the file
	buf    []byte
	first  error // the first reason, for the summary
}

// add writes one reject: item, or raw when the input did not parse; line is 0 when there is none.
func (r *rejects) add(line int64, item dynaflow.Item, raw []byte, why error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		if err := r.open(); err != nil {
			return err
		}
	}
	b := append(r.buf[:0], '{')
	if item != nil {
		b = append(b, `"Item":`...)
		b = appendDDBItem(b, item)
	} else {
		b = append(b, `"raw":`...)
		b = appendString(b, string(raw))
	}
	b = append(b, `,"error":`...)
	b = appendString(b, why.Error())
	if line > 0 {
		b = fmt.Appendf(b, `,"line":%d`, line)
	}
	b = append(b, "}\n"...)
	r.buf = b
	n, err := r.bw.Write(b)
	r.length += int64(n)
	r.counted(why)
	if err != nil {
		return fmt.Errorf("rejects file %s: %w", r.path, err)
	}
	return nil
}

// tally counts a reject without writing it (a dry run without --rejects).
func (r *rejects) tally(why error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counted(why)
}

// counted counts a reject; r.mu is held.
func (r *rejects) counted(why error) {
	r.n++
	if r.first == nil {
		r.first = why
	}
}

// open creates the file, or opens it at r.at to append to a resumed run's rejects.
func (r *rejects) open() error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if r.at > 0 {
		flags = os.O_WRONLY
	}
	f, err := os.OpenFile(r.path, flags, 0o644)
	if err != nil {
		return fmt.Errorf("rejects file: %w", err)
	}
	if r.at > 0 {
		if err := f.Truncate(r.at); err != nil {
			f.Close()
			return fmt.Errorf("rejects file: %w", err)
		}
		if _, err := f.Seek(r.at, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("rejects file: %w", err)
		}
	}
	r.f, r.bw, r.length = f, bufio.NewWriterSize(f, 64<<10), r.at
	return nil
}

// sync writes out what is buffered and returns the file's length.
func (r *rejects) sync() (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return r.at, nil
	}
	if err := r.bw.Flush(); err != nil {
		return 0, fmt.Errorf("rejects file %s: %w", r.path, err)
	}
	return r.length, nil
}

func (r *rejects) close() error {
	_, err := r.sync()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f != nil {
		if cerr := r.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("rejects file %s: %w", r.path, cerr)
		}
		r.f = nil
	}
	return err
}

func (r *rejects) count() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}
