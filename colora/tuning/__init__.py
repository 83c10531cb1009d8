"""Adapting the pre-trained base to a task: FAIG contributions (faig), rank allocation by
contribution (allocation, CoLoRA), the fine-tuning run (finetune) and method comparisons (compare)."""
