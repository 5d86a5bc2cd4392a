"""Training corpus: TTS front ends with exact phone timings, sentences, augmentation and the corpus builder."""
