"""Writes the fuzzers' committed seed corpora, tests/fuzz/corpus/<harness>/ (small valid inputs and
the edge cases the unit tests already have). Python's standard library only.

    build/cpu/apps/mambagrad train --data T --d-model 4 --n-layer 1 --d-state 2 --steps 2 --batch 1 \\
        --seq-len 4 --eval-every 1 --eval-batches 1 --log-every 1 --out /tmp/seeds/tiny   # T: 'abcd ab. ' * 40
    python3 tests/fuzz/make_seeds.py /tmp/seeds/tiny/checkpoint.safetensors

The checkpoint given is the real seed of fuzz_checkpoint; the script adds variants of it without
checksums (so mutated tensor data reaches the loaders behind the checksum check), without the
optimizer, with a config far larger than the file, and with the metadata's JSON values made odd.
"""
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(harness, name, data):
    os.makedirs(os.path.join(CORPUS, harness), exist_ok=True)
    with open(os.path.join(CORPUS, harness, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def safetensors_bytes(header, buffer):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + buffer


def without_tensors(header, buffer, drop):
    """The file without the tensors whose names satisfy drop(name), offsets repacked."""
    kept, out, offset = {}, b"", 0
    entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"])
    for name, e in entries:
        if drop(name):
            continue
        begin, end = e["data_offsets"]
        out += buffer[begin:end]
        kept[name] = dict(e, data_offsets=[offset, offset + end - begin])
        offset += end - begin
    if "__metadata__" in header:
        kept = {"__metadata__": header["__metadata__"], **kept}
    return kept, out


def checkpoint_seeds(path):
    header, buffer = read_safetensors(path)
    write("fuzz_checkpoint", "tiny", open(path, "rb").read())
    meta = dict(header["__metadata__"])
    del meta["tensor_sha256"]
    plain = dict(header, __metadata__=meta)
    write("fuzz_checkpoint", "tiny_without_checksums", safetensors_bytes(plain, buffer))
    model_only, data = without_tensors(plain, buffer, lambda name: name.startswith("optimizer."))
    write("fuzz_checkpoint", "model_only_without_checksums", safetensors_bytes(model_only, data))
    # A config far larger than the file (found by reasoning about this harness: the loader once
    # allocated 25 GB for it; apps/common/checkpoint.cpp now compares the counts first).
    big = dict(meta, config=json.dumps(dict(json.loads(meta["config"]), d_model=40000)))
    write("fuzz_checkpoint", "config_larger_than_the_file", safetensors_bytes(dict(plain, __metadata__=big), buffer))
    odd = dict(meta, step="-1", rng_state='["1","2","3"]', run_state='{"loss_window_steps":-1}',
               train_options='{"steps":0,"lr":"x"}')
    write("fuzz_checkpoint", "odd_metadata", safetensors_bytes(dict(plain, __metadata__=odd), buffer))
    # The same files are good safetensors seeds, and the config inside is a MambaConfig seed.
    write("fuzz_safetensors", "checkpoint", open(path, "rb").read())
    write("fuzz_safetensors", "checkpoint_without_checksums", safetensors_bytes(plain, buffer))
    write("fuzz_mamba_config", "from_checkpoint", meta["config"])
    # The vocabulary, then a text (the tokenizer harness splits its input in two halves).
    vocab = meta["vocabulary"]
    write("fuzz_char_tokenizer", "checkpoint_vocabulary", vocab + "ab. " * (len(vocab) // 4) + "abcd"[: len(vocab) % 4])


def safetensors_seeds():
    fixture = os.path.join(HERE, "..", "fixtures", "safetensors", "python_written.safetensors")
    shutil.copy(fixture, os.path.join(CORPUS, "fuzz_safetensors", "python_written"))
    write("fuzz_safetensors", "no_tensors", safetensors_bytes({}, b""))
    write("fuzz_safetensors", "metadata_only", safetensors_bytes({"__metadata__": {"k": "v"}}, b""))
    f32 = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
           "b": {"dtype": "F64", "shape": [2], "data_offsets": [24, 40]},
           "c": {"dtype": "I64", "shape": [], "data_offsets": [40, 48]},
           "d": {"dtype": "F32", "shape": [0, 4], "data_offsets": [48, 48]}}
    write("fuzz_safetensors", "three_dtypes", safetensors_bytes(f32, bytes(range(48))))
    write("fuzz_safetensors", "overlap", safetensors_bytes(
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
         "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8)))
    write("fuzz_safetensors", "huge_shape", safetensors_bytes(
        {"a": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}, bytes(8)))
    write("fuzz_safetensors", "bf16", safetensors_bytes({"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
                                                        bytes(4)))


def config_seeds():
    defaults = {"d_model": 128, "n_layer": 4, "vocab_size": 65, "d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": 0,
                "dt_min": 0.001, "dt_max": 0.1, "dt_init_floor": 1e-4, "conv_bias": True, "bias": False,
                "pad_vocab_size_multiple": 1, "tie_embeddings": True, "norm_eps": 1e-5}
    write("fuzz_mamba_config", "all_fields", json.dumps(defaults, indent=2))
    write("fuzz_mamba_config", "empty_object", "{}")
    write("fuzz_mamba_config", "hf_style", json.dumps({"d_model": 768, "n_layer": 24, "vocab_size": 50277,
                                                       "pad_vocab_size_multiple": 8}))
    write("fuzz_mamba_config", "wrong_types", '{"d_model": "128", "bias": 1, "norm_eps": null}')
    write("fuzz_mamba_config", "out_of_range", '{"d_model": -1, "dt_min": 0.5, "dt_max": 0.1}')
    write("fuzz_mamba_config", "unknown_field", '{"d_modle": 64}')
    write("fuzz_mamba_config", "huge_numbers", '{"d_model": 9223372036854775807, "expand": 18446744073709551615, '
                                               '"norm_eps": 1e308}')


def tokenizer_seeds():
    shakespeare = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    write("fuzz_char_tokenizer", "shakespeare", shakespeare + "First Citizen:\nBefore we proceed any further, hea")
    write("fuzz_char_tokenizer", "duplicate", "abca" + "abca")
    write("fuzz_char_tokenizer", "all_bytes", bytes(range(256)) + bytes(range(255, -1, -1)))
    write("fuzz_char_tokenizer", "outside", "abc" + "abz")


def bpe_seeds():
    """Small tokenizer.json files cut from the BPE fixture (its first 300 tokens and the merges among
    them), with and without added tokens, and a minimal one."""
    with open(os.path.join(HERE, "..", "fixtures", "bpe", "tokenizer.json"), encoding="utf-8") as f:
        full = json.load(f)
    small = dict(full)
    vocab = dict(list(full["model"]["vocab"].items())[:300])
    merges = [m for m in full["model"]["merges"] if m[0] + m[1] in vocab and m[0] in vocab and m[1] in vocab]
    small["model"] = dict(full["model"], vocab=vocab, merges=merges)
    write("fuzz_bpe_tokenizer", "fixture_300", json.dumps(small, ensure_ascii=False))
    write("fuzz_bpe_tokenizer", "no_added_tokens", json.dumps(dict(small, added_tokens=[]), ensure_ascii=False))
    write("fuzz_bpe_tokenizer", "merges_as_strings",
          json.dumps(dict(small, model=dict(small["model"], merges=[" ".join(m) for m in merges])), ensure_ascii=False))
    write("fuzz_bpe_tokenizer", "minimal", json.dumps({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
                                                                  "merges": [["a", "b"]]}}))


def hf_config_seeds():
    for name in ("tiny", "tiny_original_keys", "tiny_options"):
        with open(os.path.join(HERE, "..", "fixtures", "hf_mamba", name, "config.json"), "rb") as f:
            write("fuzz_hf_config", name, f.read())


def cli_seeds():
    runs = {
        "train_defaults": ["train"],
        "train_tiny": ["train", "--steps", "4", "--batch", "2", "--seq-len", "16", "--d-model", "16", "--n-layer", "1",
                       "--eval-every", "2", "--eval-batches", "1", "--log-every", "2", "--out", "/tmp/x"],
        "train_resume": ["train", "--resume", "--steps", "100", "--time-budget", "1e-9"],
        "train_bad_lr": ["train", "--lr", "-1"],
        "train_config": ["train", "--config", "/dev/null", "--d-model", "8"],
        "generate": ["generate", "--checkpoint", "c.safetensors", "--prompt", "ROMEO:", "--max-new-tokens", "20",
                     "--top-k", "5", "--top-p", "0.9", "--seed", "3", "--temperature", "0.8", "--threads", "2"],
        "generate_bad_top_p": ["generate", "--top-p", "0"],
        "demo": ["demo", "--steps", "300", "--lr", "0.01", "--optimizer", "sgd", "--hidden", "4", "--points", "10"],
        "help": ["--help"],
        "tokenize": ["tokenize", "--checkpoint", "c.safetensors", "--ids"],
        "export": ["export", "--checkpoint", "c.safetensors", "--hf", "/tmp/out"],
        "generate_model": ["generate", "--model", "/tmp/m", "--prompt", "Hi", "--max-new-tokens", "3"],
        "train_init_from": ["train", "--init-from", "/tmp/m", "--steps", "3", "--model", "gpt", "--n-head", "2"],
        "unknown": ["frobnicate", "--x"],
    }
    for name, args in runs.items():
        write("fuzz_cli", name, b"\0".join(a.encode() for a in args))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    shutil.rmtree(CORPUS, ignore_errors=True)
    os.makedirs(os.path.join(CORPUS, "fuzz_safetensors"))
    checkpoint_seeds(sys.argv[1])
    safetensors_seeds()
    config_seeds()
    tokenizer_seeds()
    bpe_seeds()
    hf_config_seeds()
    cli_seeds()
    for harness in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, harness))
        size = sum(os.path.getsize(os.path.join(CORPUS, harness, f)) for f in files)
        print(f"{harness}: {len(files)} seeds, {size} bytes")


if __name__ == "__main__":
    main()
