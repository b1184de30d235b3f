import pytest

from workbench.config import ConfigError
from workbench.data.corpus import shakespeare_path
from workbench.data.tokenizers import (
    CharTokenizer,
    DigitTokenizer,
    GPT2Tokenizer,
    PromptError,
    describe_chars,
    load_tokenizer,
)


def test_gpt2_encodes_like_openai_gpt2():
    tok = GPT2Tokenizer()
    assert tok.vocab_size == 50257
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode("a<|endoftext|>b")[1] == tok.eot == tok.start_id == 50256
    text = "First Citizen:\nBefore we proceed any further, hear me speak. ünïcødé ✓"
    assert tok.decode(tok.encode(text)) == text


def test_char_vocab_of_tiny_shakespeare():
    text = shakespeare_path().read_text(encoding="utf-8")
    tok = CharTokenizer.from_text(text)
    assert tok.vocab_size == 65
    assert tok.decode([tok.start_id]) == "\n"
    assert tok.chars == "".join(sorted(set(text)))
    sample = text[:1000]
    assert tok.decode(tok.encode(sample)) == sample


def test_char_error_names_missing_characters():
    tok = CharTokenizer.from_text(shakespeare_path().read_text(encoding="utf-8"))
    with pytest.raises(PromptError) as err:
        tok.encode("Héllo wörld €é")
    assert isinstance(err.value, ConfigError)
    assert "'é', 'ö', '€'" in err.value.message
    assert "65 characters" in err.value.hint
    assert "A-Z" in err.value.hint and "a-z" in err.value.hint and "newline" in err.value.hint


def test_describe_chars():
    assert describe_chars("\n !ABCDEFGHIJKLMNOPQRSTUVWXYZabc09") == "newline, space, A-Z, abc, 09, !"


def test_digit_tokenizer():
    tok = DigitTokenizer()
    assert tok.vocab_size == 10
    assert tok.encode("0239") == [0, 2, 3, 9]
    assert tok.decode([1, 8, 0]) == "180"
    with pytest.raises(PromptError, match="'x'"):
        tok.encode("12x")


@pytest.mark.parametrize("tok", [DigitTokenizer(), CharTokenizer("\n !abcé"), GPT2Tokenizer()], ids=lambda t: t.name)
def test_save_and_load_from_run_dir(tmp_path, tok):
    tok.save(tmp_path)
    assert (tmp_path / "tokenizer.json").exists()
    loaded = load_tokenizer(tmp_path)
    assert type(loaded) is type(tok) and loaded.vocab_size == tok.vocab_size
    assert loaded.to_dict() == tok.to_dict()
    text = "0123" if tok.name == "digits" else "abc é!\n"
    assert loaded.encode(text) == tok.encode(text)


def test_load_tokenizer_without_file(tmp_path):
    with pytest.raises(ConfigError, match="tokenizer.json"):
        load_tokenizer(tmp_path)
