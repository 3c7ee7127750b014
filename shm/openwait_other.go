//go:build !linux

package shm

import (
	"context"
	"time"
)

type dirWatch struct{}

func watchCreate(dir, file string) (*dirWatch, error) { return nil, ErrNotSupported }

func (w *dirWatch) close() {}

func (w *dirWatch) wait(ctx context.Context, poll time.Duration) error { return sleepCtx(ctx, poll) }
