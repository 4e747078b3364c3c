// The codec is header-only; this unit anchors the protocol library.
#include "core/protocol/codec.hpp"
