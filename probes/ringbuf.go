package probes

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ringReader consumes a BPF ring buffer through its memory mapping, so that
// draining costs no system call and no allocation per event: the BPF side
// submits without waking us (a wakeup per event costs the traced thread more
// than a microsecond) and we drain on a short timer instead.
type ringReader struct {
	fd       int
	epfd     int
	consumer []byte // one page, read-write: our position
	producer []byte // producer page followed by the data area, mapped twice
	data     []byte
	mask     uint64
	events   [2]unix.EpollEvent
	// wakeFD is an eventfd in the epoll set, so that wake ends a wait at
	// once: a reader can then wait long at rest and still stop promptly.
	wakeFD int
	wakeMu sync.Mutex // wake against close
	// draining: drains may come from two goroutines (a session's loop,
	// and a snapshot that wants the calls up to now), one at a time.
	draining sync.Mutex
}

const (
	ringBusyBit    = 1 << 31
	ringDiscardBit = 1 << 30
	ringHeaderSize = 8
)

func newRingReader(mapFD int, size int) (*ringReader, error) {
	page := os.Getpagesize()
	r := &ringReader{fd: mapFD, epfd: -1, wakeFD: -1, mask: uint64(size - 1)}
	var err error
	r.consumer, err = unix.Mmap(mapFD, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map ring buffer consumer page: %w", err)
	}
	r.producer, err = unix.Mmap(mapFD, int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("map ring buffer data: %w", err)
	}
	r.data = r.producer[page:]
	r.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("create epoll instance: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(mapFD)}
	if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, mapFD, &ev); err != nil {
		r.close()
		return nil, fmt.Errorf("watch ring buffer: %w", err)
	}
	r.wakeFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	ev = unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(r.wakeFD)}
	if err := unix.EpollCtl(r.epfd, unix.EPOLL_CTL_ADD, r.wakeFD, &ev); err != nil {
		r.close()
		return nil, fmt.Errorf("watch eventfd: %w", err)
	}
	return r, nil
}

// wake ends the current or next wait at once.
func (r *ringReader) wake() {
	r.wakeMu.Lock()
	defer r.wakeMu.Unlock()
	if r.wakeFD >= 0 {
		var one = [8]byte{1}
		_, _ = unix.Write(r.wakeFD, one[:]) // EAGAIN: a wake is pending already
	}
}

// wait blocks until the BPF side forces a wakeup, wake is called or
// timeoutMs passes.
func (r *ringReader) wait(timeoutMs int) error {
	n, err := unix.EpollWait(r.epfd, r.events[:], timeoutMs)
	if err != nil && err != unix.EINTR {
		return fmt.Errorf("wait for ring buffer: %w", err)
	}
	for _, ev := range r.events[:max(n, 0)] {
		if int(ev.Fd) == r.wakeFD {
			var buf [8]byte
			_, _ = unix.Read(r.wakeFD, buf[:]) // reset it; EAGAIN: nothing to reset
		}
	}
	return nil
}

// drain hands every complete record to fn and releases its space; it
// returns the number of records read.
func (r *ringReader) drain(fn func(*Event)) int {
	r.draining.Lock()
	defer r.draining.Unlock()
	consPtr := (*uint64)(unsafe.Pointer(&r.consumer[0]))
	prodPtr := (*uint64)(unsafe.Pointer(&r.producer[0]))
	cons := atomic.LoadUint64(consPtr)
	n := 0
	for {
		prod := atomic.LoadUint64(prodPtr)
		if cons >= prod {
			break
		}
		for cons < prod {
			hdr := (*uint32)(unsafe.Pointer(&r.data[cons&r.mask]))
			l := atomic.LoadUint32(hdr)
			if l&ringBusyBit != 0 {
				// Reserved but not yet submitted: stop here, it is next.
				atomic.StoreUint64(consPtr, cons)
				return n
			}
			size := uint64(l &^ (ringBusyBit | ringDiscardBit))
			if l&ringDiscardBit == 0 && size >= eventSize {
				// The data area is mapped twice, so a record that wraps
				// around the end is still contiguous here.
				fn((*Event)(unsafe.Pointer(&r.data[(cons+ringHeaderSize)&r.mask])))
				n++
			}
			cons += (size + ringHeaderSize + 7) &^ 7
		}
		atomic.StoreUint64(consPtr, cons)
	}
	return n
}

func (r *ringReader) close() {
	r.wakeMu.Lock()
	if r.wakeFD >= 0 {
		unix.Close(r.wakeFD)
		r.wakeFD = -1
	}
	r.wakeMu.Unlock()
	if r.epfd >= 0 {
		unix.Close(r.epfd)
		r.epfd = -1
	}
	if r.producer != nil {
		unix.Munmap(r.producer)
		r.producer, r.data = nil, nil
	}
	if r.consumer != nil {
		unix.Munmap(r.consumer)
		r.consumer = nil
	}
}
