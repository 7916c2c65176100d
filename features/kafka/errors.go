package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	kafkago "github.com/segmentio/kafka-go"
)

var (
	// ErrUnavailable is wrapped by errors that mean the broker could not be
	// reached or could not take the request right now (connection refused,
	// timeouts, no leader, an unknown topic — which may be being created —
	// and other retriable broker errors). Callers answering a
	// client should say "try again later" (HTTP 503 with Retry-After).
	ErrUnavailable = errors.New("kafka: broker unavailable")

	// ErrClosed is returned by calls on a Consumer or Producer after Close.
	ErrClosed = errors.New("kafka: closed")
)

// classify wraps err with ErrUnavailable when it means the cluster cannot be
// reached or cannot serve the request right now. Cancellation of the caller's
// own context is not unavailability and is returned as the context's error.
func classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if isUnavailable(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

func isUnavailable(err error) bool {
	var werrs kafkago.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			if e != nil && isUnavailable(e) {
				return true
			}
		}
		return false
	}
	var kerr kafkago.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary() || kerr == kafkago.BrokerNotAvailable
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		return true
	}
	var operr *net.OpError
	if errors.As(err, &operr) {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}
