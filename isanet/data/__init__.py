"""Data: the VOC / Cityscapes / ADE20K readers, mmseg's transforms, and synthetic sample data in those layouts."""
