package worker

import (
	"encoding/binary"
	"unicode/utf8"
)

// Environ builds a WSGI environ as a Python marshal dict, so that the worker
// decodes it with one marshal.loads call. Strings are "bytes as latin-1" as
// PEP 3333 requires: each byte of a Go string becomes one code point.
// The zero value is ready to use; Bytes finishes it.
type Environ struct {
	b []byte
}

// Reset empties the environ, keeping its buffer.
func (e *Environ) Reset() { e.b = e.b[:0] }

// Str adds a str entry.
func (e *Environ) Str(key, value string) {
	if len(e.b) == 0 {
		e.b = append(e.b, '{')
	}
	e.b = appendStr(e.b, key)
	e.b = appendStr(e.b, value)
}

// Bool adds a bool entry.
func (e *Environ) Bool(key string, value bool) {
	if len(e.b) == 0 {
		e.b = append(e.b, '{')
	}
	e.b = appendStr(e.b, key)
	if value {
		e.b = append(e.b, 'T')
	} else {
		e.b = append(e.b, 'F')
	}
}

// Bytes returns the finished marshal encoding. The environ must not be
// changed afterwards except by Reset.
func (e *Environ) Bytes() []byte {
	if len(e.b) == 0 {
		e.b = append(e.b, '{')
	}
	return append(e.b, '0')
}

// appendStr appends s in marshal's str forms: short ASCII ('z'), ASCII
// ('a'), or UTF-8 ('u') with each byte of s taken as a latin-1 code point.
func appendStr(b []byte, s string) []byte {
	extra := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			extra++
		}
	}
	switch {
	case extra == 0 && len(s) < 256:
		b = append(b, 'z', byte(len(s)))
		return append(b, s...)
	case extra == 0:
		b = append(b, 'a')
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		return append(b, s...)
	}
	b = append(b, 'u')
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)+extra))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < utf8.RuneSelf {
			b = append(b, c)
		} else {
			b = append(b, 0xC0|c>>6, 0x80|c&0x3F)
		}
	}
	return b
}
