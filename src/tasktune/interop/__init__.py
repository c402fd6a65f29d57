"""Other tools' formats: PEFT adapters in and out."""
