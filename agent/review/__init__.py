"""The review queue: reviewers confirm or reject flags, reviewed samples export as fine-tuning
sets and train the next version of a trainable head."""
