//go:build !linux

package control

import (
	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/internal/sys"
)

func sendReply(name string, maxParts int, mk func(owner int) *Reply) error {
	return sys.ErrNotSupported
}

func capToLimits(*mq.Options) {}
