"""The swap pipeline: detect, align, identity, frame network, paste-back; images and videos."""
