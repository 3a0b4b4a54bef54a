"""The spans as they travel: one trace's spans as framed bytes, and the wire framing that carries them."""
