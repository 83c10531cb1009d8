"""The one training loop shared by PROD pre-training and fine-tuning (trainer), its experiment
folder and resumable state (experiment), schedules, losses and torchrun support (distributed)."""
