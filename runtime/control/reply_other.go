//go:build !linux

package control

import (
	"context"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/internal/sys"
)

func (s *Server) sendReply(ctx context.Context, name string, maxParts int, mk func(owner int) *Reply) error {
	return sys.ErrNotSupported
}

func capToLimits(*mq.Options) {}
