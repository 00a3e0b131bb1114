"""Bespoke trainer: fine-tune a base model with PEFT, evaluate, audit fairness, write a version."""
