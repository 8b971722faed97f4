"""Evaluation: whole, sliding-window and multi-scale + flip inference, mmseg's IoU metrics, the evaluation loop."""
