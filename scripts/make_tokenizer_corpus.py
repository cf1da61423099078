#!/usr/bin/env python3
"""Writes tests/fixtures/text/tokenizer_corpus.jsonl (one JSON string per line).

The corpus is the source of truth for tokenizer parity fixtures; this script is
how it was written. Edit the cases here and rerun, or edit the .jsonl directly
(then keep the two in sync). Invisible and line-breaking characters are written
as JSON \\u escapes so every case survives any line-based reader.
"""
import os
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "text", "tokenizer_corpus.jsonl")
import json
C = []
def add(*xs): C.extend(xs)

# --- edge / whitespace -------------------------------------------------
add("", " ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\n\n\n\n", "\t\n", " \n ",
    "\r\n", "\r", "line one\r\nline two\r\n", "a\rb", "a\n\nb", "a\n\n\nb", "a \n b",
    " leading space", "  two leading spaces", "trailing space ", "trailing spaces   ",
    "   both sides   ", "tab\tseparated\tvalues", "\tindented with a tab", "mixed \t \t whitespace",
    "word  word   word    word     word", "x" + " " * 16 + "y", " " * 32,
    "end with newline\n", "\nstart with newline", "para one.\n\npara two.\n\n\npara three.",
    "    four-space indent", "        eight-space indent\n            twelve",
    "a\u000bb\u000cc", "form\ffeed")

# --- basic English --------------------------------------------------------
add("Hello world", " Hello world", "Hello World", " Hello World!", "Hello, world!", "hello",
    " hello", "HELLO", "The quick brown fox jumps over the lazy dog.",
    "A small model can still be surprisingly useful.",
    "She sells sea shells by the sea shore.",
    "Tokenization splits text into pieces.",
    "What time is it? It's half past three.",
    "Mr. Smith went to Washington D.C. on Jan. 5th.",
    "e.g. i.e. etc. vs. a.m. p.m.",
    "ALL CAPS SENTENCE WITH SHOUTING!!!",
    "camelCaseIdentifier snake_case_identifier kebab-case-identifier",
    "Punctuation: ; , . ! ? ... -- --- ( ) [ ] { } < > / \\ | @ # $ % ^ & * _ + = ~ `",
    "\"double quotes\" and 'single quotes' and `backticks`",
    "\u201csmart quotes\u201d and \u2018curly apostrophes\u2019 \u2014 em dash \u2013 en dash \u2026",
    "hyphen-ated well-known state-of-the-art",
    "https://example.com/path/to/page?query=1&lang=en#section",
    "user.name+tag@example.org",
    "C:\\Users\\someone\\Documents\\file.txt",
    "/usr/local/bin/ondo --model ./models/small.gguf",
    "#hashtag @mention $CASH 100% 3/4 a&b")

# --- contractions -----------------------------------------------------------
add("it's", "It's", "IT'S", "he's she's it's", "we're you're they're", "I'll you'll we'll",
    "I've you've they've", "I'd you'd he'd", "don't can't won't shouldn't",
    "DON'T CAN'T WON'T", "JOHN'S CAR", "The dog's bone and the dogs' bones",
    "Y'all'll've", "o'clock rock'n'roll", "'quoted' 's 't 're 've 'm 'll 'd",
    "I'M HERE, YOU'RE THERE, WE'LL SEE", "it\u2019s with a curly apostrophe")

# --- numbers ----------------------------------------------------------------
add("0", "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678901234567890",
    "3.14159265358979323846", "-42", "+7", "1e10", "6.022e23", "0x7fffffff", "0b1010_1010",
    "1,234,567", "1.234.567,89", "$1,234.56", "\u20ac99.99", "\u00a512,000", "50%",
    "2024-03-15", "15/03/2024", "03.15.2024", "12:34:56", "2024-03-15T12:34:56Z",
    "Call 555-0123 or +1 (555) 012-3456", "Version 1.2.3-rc.4+build.5",
    "Pi is approximately 3.14, e is about 2.718.", "1st 2nd 3rd 4th 21st 102nd",
    "\u0661\u0662\u0663 \u0967\u0968\u0969 \uff11\uff12\uff13", "\u2160 \u2161 \u2162 \u00bd \u00bc \u00b2 \u00b3",
    "000000000000", "9" * 40)

# --- Korean -----------------------------------------------------------------
add("\uc548\ub155\ud558\uc138\uc694", " \uc548\ub155\ud558\uc138\uc694",
    "\uc548\ub155\ud558\uc138\uc694, \ubc18\uac11\uc2b5\ub2c8\ub2e4.",
    "\uc624\ub298 \ub0a0\uc528\uac00 \uc815\ub9d0 \uc88b\ub124\uc694.",
    "\ud55c\uad6d\uc5b4 \ud1a0\ud070\ud654 \ud14c\uc2a4\ud2b8\uc785\ub2c8\ub2e4.",
    "\uc800\ub294 \ud559\uad50\uc5d0 \uac11\ub2c8\ub2e4.",
    "\ub0b4\uc77c \uc544\uce68 \uc77c\uacf1 \uc2dc\uc5d0 \ub9cc\ub0a9\uc2dc\ub2e4.",
    "\uc774 \ubaa8\ub378\uc740 \ud734\ub300\ud3f0\uc5d0\uc11c\ub3c4 \ub3cc\uc544\uac11\ub2c8\ub2e4.",
    "\uac00\ub098\ub2e4\ub77c\ub9c8\ubc14\uc0ac\uc544\uc790\ucc28\uce74\ud0c0\ud30c\ud558",
    "\u3131\u3134\u3137\u3139\u3141\u3142\u3145\u3147\u3148\u314a\u314b\u314c\u314d\u314e",
    "\u314f\u3151\u3153\u3155\u3157\u315b\u315c\u3160\u3161\u3163",
    "\u314b\u314b\u314b\u314b \u314e\u314e \u315c\u315c",
    "\uac12 \ub6ab \ubdc1 \ud79d \uc6e8 \uc65c",
    "\uc11c\uc6b8\ud2b9\ubcc4\uc2dc \uac15\ub0a8\uad6c \ud14c\ud5e4\ub780\ub85c 123\ubc88\uae38 45",
    "\uac00\uaca9\uc740 12,000\uc6d0\uc785\ub2c8\ub2e4.",
    "2024\ub144 3\uc6d4 15\uc77c \uae08\uc694\uc77c",
    "\ud55c\uad6d\uc5b4\uc640 English\uac00 \uc11e\uc778 \ubb38\uc7a5\uc785\ub2c8\ub2e4.",
    "GPU\uac00 \uc5c6\uc5b4\ub3c4 CPU\ub85c \ucd94\ub860\ud560 \uc218 \uc788\uc5b4\uc694!",
    "\u201c\uc815\ub9d0\uc694?\u201d \ud558\uace0 \uadf8\ub140\uac00 \ubb3c\uc5c8\ub2e4.",
    "\uc9c8\ubb38: \ud55c\uad6d\uc758 \uc218\ub3c4\ub294 \uc5b4\ub514\uc778\uac00\uc694?\n\ub2f5: \uc11c\uc6b8\uc785\ub2c8\ub2e4.",
    "\u1100\u1161\u11a8",  # conjoining jamo (NFD form of \uac01)
    "\ud55c\uc790 \u6f22\u5b57 \ud63c\uc6a9 \ubb38\uc7a5",
    "\ub744\uc5b4\uc4f0\uae30\uc5c6\uc774\uc4f4\uae34\ubb38\uc7a5\uc740\ud1a0\ud070\uc774\uc5b4\ub5bb\uac8c\ub098\ub258\uae4c\uc694",
    "\uc6b0\ub9ac\ub294  \ub450 \uce78  \ub744\uc5b4\uc11c   \uc4f4\ub2e4",
    "\ub3c4\uc11c\uad00\uc5d0\uc11c \ucc45\uc744 \ube4c\ub824 \uc654\ub2e4. \uc7ac\ubbf8\uc788\uc5c8\ub2e4!")

# --- Japanese ----------------------------------------------------------------
add("\u3053\u3093\u306b\u3061\u306f", "\u3053\u3093\u306b\u3061\u306f\u3001\u4e16\u754c\uff01",
    "\u4eca\u65e5\u306f\u3044\u3044\u5929\u6c17\u3067\u3059\u306d\u3002",
    "\u79c1\u306f\u5b66\u751f\u3067\u3059\u3002",
    "\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a\u3068\u6f22\u5b57",
    "\u30b3\u30f3\u30d4\u30e5\u30fc\u30bf\u30fc\u30b5\u30a4\u30a8\u30f3\u30b9",
    "\uff8a\uff9d\uff76\uff78\uff76\uff80\uff76\uff85",  # half-width katakana
    "\u6771\u4eac\u90fd\u6e0b\u8c37\u533a 1\u4e01\u76ee2\u756a3\u53f7",
    "\u5c0f\u3055\u306a\u30e2\u30c7\u30eb\u3067\u3082\u5f79\u306b\u7acb\u3061\u307e\u3059\u3002",
    "\u300c\u672c\u5f53\u3067\u3059\u304b\uff1f\u300d\u3068\u5f7c\u5973\u306f\u5c0b\u306d\u305f\u3002",
    "\u3042\u3044\u3046\u3048\u304a\u304b\u304d\u304f\u3051\u3053",
    "\u30fc\u30fc\u30fc\u301c\u301c\u3000\u30fb\u30fb\u30fb",
    "\u304c\u304e\u3050\u3052\u3054 \u304b\u3099\u304d\u3099",  # precomposed vs combining dakuten
    "2024\u5e743\u670815\u65e5\uff08\u91d1\uff09",
    "\uff21\uff22\uff23\uff44\uff45\uff46\uff10\uff11\uff12",  # fullwidth latin
    "\u65e5\u672c\u8a9e\u3068English\u306e\u6df7\u5728\u6587",
    "\u3059\u307f\u307e\u305b\u3093\u3001\u99c5\u306f\u3069\u3053\u3067\u3059\u304b\uff1f",
    "\u732b\u304c\u7a93\u306e\u5916\u3092\u898b\u3066\u3044\u308b\u3002")

# --- Chinese -----------------------------------------------------------------
add("\u4f60\u597d", "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002",
    "\u6211\u559c\u6b22\u5b66\u4e60\u7f16\u7a0b\u3002",
    "\u8fd9\u662f\u4e00\u4e2a\u5206\u8bcd\u6d4b\u8bd5\u3002",
    "\u5c0f\u6a21\u578b\u4e5f\u53ef\u4ee5\u5728\u624b\u673a\u4e0a\u8fd0\u884c\u3002",
    "\u7e41\u9ad4\u4e2d\u6587\u8207\u7b80\u4f53\u4e2d\u6587",
    "\u5317\u4eac\u5e02\u6d77\u6dc0\u533a\u4e2d\u5173\u6751\u5927\u885727\u53f7",
    "\u4ef7\u683c\uff1a\u00a5128.50\u5143",
    "\u4e00\u4e8c\u4e09\u56db\u4e94\u516d\u4e03\u516b\u4e5d\u5341\u767e\u5343\u4e07\u4ebf",
    "\u300a\u4e66\u540d\u300b\u3001\u201c\u5f15\u53f7\u201d\u3001\uff08\u62ec\u53f7\uff09\u3010\u65b9\u62ec\u53f7\u3011",
    "\u7528Python\u5199\u4e00\u4e2aHello World\u7a0b\u5e8f",
    "\u9f98\u9f49\u7228\u9750\u9f8d",  # rare / high-stroke characters
    "\U00020000\U0002a700\U0002b740",  # CJK extension B/C/D (4-byte)
    "\u6625\u7720\u4e0d\u89c9\u6653\uff0c\u5904\u5904\u95fb\u557c\u9e1f\u3002",
    "\u7b2c\u4e00\u7ae0\u3000\u5f00\u59cb")

# --- Rust ----------------------------------------------------------------------
add("fn main() {\n    println!(\"Hello, world!\");\n}\n",
    "let mut v: Vec<u32> = Vec::with_capacity(1024);",
    "impl<'a, T: Clone + Send + 'static> Iterator for Foo<'a, T> {",
    "#[derive(Debug, Clone, PartialEq)]\npub struct Token { id: u32, text: String }",
    "match x {\n    Some(ref y) if *y > 0 => y + 1,\n    _ => 0,\n}",
    "use std::collections::HashMap;",
    "let s = r#\"raw \"string\" here\"#;",
    "unsafe { std::ptr::copy_nonoverlapping(src, dst, n) }",
    "assert_eq!(a.len(), b.len(), \"length mismatch: {} vs {}\", a.len(), b.len());",
    "pub(crate) async fn load(path: &Path) -> anyhow::Result<Model> {",
    "x.iter().map(|&v| v as f32 * 0.5).sum::<f32>()",
    "// comment\n/* block */\n/// doc comment")

# --- Python ----------------------------------------------------------------------
add("def add(a, b):\n    return a + b\n",
    "import numpy as np\nx = np.zeros((4, 4), dtype=np.float32)",
    "class Model(nn.Module):\n    def __init__(self):\n        super().__init__()",
    "print(f\"{name!r}: {value:>10.3f}\")",
    "if __name__ == \"__main__\":\n    main()",
    "xs = [i ** 2 for i in range(10) if i % 2 == 0]",
    "with open('data.txt', encoding='utf-8') as f:\n\tfor line in f:\n\t\tpass",
    "lambda x, *args, **kwargs: (x, args, kwargs)",
    "@dataclass(frozen=True)\nclass Point:\n    x: int = 0",
    "    # indented comment with trailing spaces   ",
    "async def fetch():\n    await asyncio.sleep(0.1)",
    "'''docstring'''\n\"\"\"another\"\"\"")

# --- JSON ------------------------------------------------------------------------
add("{\"name\": \"ondo\", \"version\": \"0.1.0\"}",
    "{\"a\":1,\"b\":[1,2,3],\"c\":{\"d\":null,\"e\":true,\"f\":false}}",
    "[\n  {\n    \"id\": 1,\n    \"text\": \"hello\"\n  }\n]",
    "{\"unicode\": \"\\u00e9\\u4e2d\", \"escaped\": \"line\\nbreak\\ttab\"}",
    "{\"float\": -1.5e-10, \"big\": 18446744073709551615}",
    "{\"role\": \"user\", \"content\": \"What is 2+2?\"}",
    "{\"\ud55c\uad6d\uc5b4\": \"\uac12\", \"\u65e5\u672c\u8a9e\": \"\u5024\"}",
    "{}[]\"\":,")

# --- shell -----------------------------------------------------------------------
add("#!/usr/bin/env bash\nset -euo pipefail",
    "for f in *.txt; do echo \"$f\"; done",
    "cargo build --release && ./target/release/ondo run -m model.gguf",
    "ls -la | grep -v '^d' | awk '{print $5, $9}' > out.txt 2>&1",
    "export PATH=\"$HOME/.local/bin:$PATH\"",
    "curl -sSL -H 'Accept: application/json' \"$URL\" | jq '.items[0]'",
    "if [ -z \"${VAR:-}\" ]; then exit 1; fi",
    "tar -xzf archive.tar.gz -C /tmp && rm -rf /tmp/old")

# --- other markup ----------------------------------------------------------------
add("<html><body><p class=\"x\">Hi</p></body></html>",
    "# Heading\n\n* item one\n* item two\n\n```rust\nlet x = 1;\n```",
    "| col a | col b |\n|-------|-------|\n| 1     | 2     |",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "\\frac{a}{b} + \\sqrt{x^2 + y^2} = \\alpha",
    "key = \"value\"\n[section]\nlist = [1, 2, 3]")

# --- emoji -----------------------------------------------------------------------
add("\U0001f600", "\U0001f600\U0001f601\U0001f602\U0001f923",
    "\U0001f44d", "\U0001f44d\U0001f3fd",  # skin tone
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",  # family ZWJ
    "\U0001f3f3\ufe0f\u200d\U0001f308",  # rainbow flag
    "\U0001f469\u200d\U0001f4bb \U0001f9d1\U0001f3fe\u200d\U0001f680",
    "\U0001f1f0\U0001f1f7 \U0001f1ef\U0001f1f5 \U0001f1fa\U0001f1f8 \U0001f1e9\U0001f1ea",  # flags
    "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # tag sequence
    "\u2764\ufe0f \u2764 \u263a\ufe0f \u2705 \u2b50",
    "1\ufe0f\u20e3 #\ufe0f\u20e3 *\ufe0f\u20e3",  # keycaps
    "\U0001f680 (normal) \U0001f636\u200d\U0001f32b\ufe0f (multiple emojis concatenated) \u2705 (only emoji that has its own token)",
    "Great job! \U0001f389\U0001f389\U0001f389",
    "\U0001f415\U0001f408\U0001f407\U0001f43b\U0001f43c",
    "\uc88b\uc544\uc694\U0001f44d \u3042\u308a\u304c\u3068\u3046\U0001f64f \u8c22\u8c22\U0001f60a")

# --- special-token look-alikes (must tokenize as plain text with special=False) ----
add("<|im_start|>", "<|im_end|>", "<|im_start|>user\nHello<|im_end|>\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>assistant\n",
    "<s>", "</s>", "<s>Hello</s>", "<unk>", "<pad>", "<|endoftext|>",
    "text<|endoftext|>more text", "<|begin_of_text|><|eot_id|>", "[INST] hi [/INST]",
    "< | im_start | >", "<<|im_start|>>", "<|im_start", "im_start|>", "<repo_name> <file_sep> <filename>")

# --- combining marks / normalization ----------------------------------------------
add("caf\u00e9", "cafe\u0301", "na\u00efve co\u00f6perate r\u00e9sum\u00e9",
    "A\u030a \u00c5 \u212b",  # A+ring, precomposed, Angstrom sign
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034da\u0357\u0369\u0301",
    "\u00c4pfel \u00d6l \u00dcbel \u00df STRASSE Stra\u00dfe",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",  # Thai
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",  # Hindi
    "\u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796\u17b7\u179f\u17c1\u179f",  # Khmer
    "\ufb01 \ufb02 \u2126 \u00b5 \u03bc")

# --- RTL / other scripts ----------------------------------------------------------
add("\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0627\u0644\u0633\u0644\u0627\u0645 \u0639\u0644\u064a\u0643\u0645 123",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "English \u05e2\u05d1\u05e8\u05d9\u05ea English",
    "\u202eright-to-left override\u202c and \u200fRLM\u200e LRM",
    "\u0628\u0650\u0633\u0652\u0645\u0650 \u0671\u0644\u0644\u0651\u064e\u0647\u0650",  # Arabic with harakat
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "\u043d\u0435\u0449\u043e \u043d\u0430 \u0431\u044a\u043b\u0433\u0430\u0440\u0441\u043a\u0438",
    "\u0393\u03b5\u03b9\u03b1 \u03c3\u03bf\u03c5 \u039a\u03cc\u03c3\u03bc\u03b5",
    "\u0532\u0561\u0580\u0565\u0582 \u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0",
    "Xin ch\u00e0o th\u1ebf gi\u1edbi",
    "T\u00fcrk\u00e7e \u0131\u0130 \u011f\u015f\u00e7",
    "\u1f64\u1fb6\u1fd6")

# --- long words ---------------------------------------------------------------------
add("antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Donaudampfschifffahrtsgesellschaftskapit\u00e4n",
    "a" * 100, "ab" * 60, "\uac00" * 50,
    "supercalifragilisticexpialidocious" * 3,
    "Lorem_ipsum_dolor_sit_amet_consectetur_adipiscing_elit_sed_do_eiusmod_tempor",
    "!" * 30, "=" * 80, "-" * 50 + ">", ".\u200b" * 10)

# --- unicode whitespace / invisible ---------------------------------------------------
add("non\u00a0breaking\u00a0space", "\u00a0leading nbsp", "ideographic\u3000space\u3000here",
    "\u3000\u3000\u5168\u89d2\u30b9\u30da\u30fc\u30b9", "em\u2003space en\u2002space thin\u2009space",
    "zero\u200bwidth\u200bspace", "zwnj\u200cand zwj\u200d", "\ufeffBOM at start",
    "word\u2028line separator\u2029paragraph separator", "narrow\u202fnbsp",
    "\u0085next line", "soft\u00adhyphen")

# --- control characters ---------------------------------------------------------------
add("bell\u0007char", "escape \u001b[31mred\u001b[0m", "null\u0000byte", "del\u007fchar",
    "\u0001\u0002\u0003")

# --- mixed / realistic ----------------------------------------------------------------------
add("w048 7tuijk dsdfhu",
    "\u043d\u0435\u0449\u043e \u043d\u0430 \u0411\u044a\u043b\u0433\u0430\u0440\u0441\u043a\u0438",
    " this is \U0001f999.cpp",
    "Price: $19.99 (was $29.99) \u2014 save 33%!",
    "The temperature is -3.5\u00b0C (25.7\u00b0F) today.",
    "Q: What's 2+2?\nA: 4.",
    "User: \uc548\ub155! How are you?\nAssistant: \u5143\u6c17\u3067\u3059\u3002Thanks!",
    "3333333333 33333 3 33 333 3333",
    "ondo v0.1 runs SmolLM2-135M at 40 tok/s on a phone.",
    "    \n    \n",
    "\n\n\n\n\n\n\n\n\n\n",
    " \t \t ",
    "   Hello\n  World  \n",
    "...\u2026\u3002\uff0e",
    "\u00a9 2024 \u00ae \u2122 \u00a7 \u00b6 \u2020 \u2021 \u2022 \u00b0 \u00b1 \u00d7 \u00f7 \u2260 \u2264 \u2265 \u221e \u2211 \u220f \u221a \u222b",
    "\u2190 \u2191 \u2192 \u2193 \u21d2 \u21d4 \u2200 \u2203 \u2208 \u2227 \u2228 \u00ac",
    "\U0001d400\U0001d401\U0001d402 \U0001d538\U0001d539",  # math alphanumerics
    "\u2460\u2461\u2462 \u3220\u3221 \u32a4")

import unicodedata
def esc(ch):
    o = ord(ch)
    if o > 0xFFFF:
        o -= 0x10000
        return "\\u%04x\\u%04x" % (0xD800 + (o >> 10), 0xDC00 + (o & 0x3FF))
    return "\\u%04x" % o
def dump(c):
    s = json.dumps(c, ensure_ascii=False)
    # keep the file readable but make invisible / line-breaking characters explicit escapes
    return "".join(esc(ch) if (unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cn") and ch != " ") else ch for ch in s)
seen = set()
dups = [c for c in C if c in seen or seen.add(c)]
assert not dups, dups
with open(OUT, "w", encoding="utf-8", newline="\n") as f:
    for c in C:
        f.write(dump(c) + "\n")
print(len(C))
with open(OUT, encoding="utf-8") as f:
    back = [json.loads(l) for l in f.read().split("\n") if l]
assert back == C
assert all("\u2028" not in l and "\x85" not in l for l in open(OUT, encoding="utf-8").read().split("\n"))
print("roundtrip ok")
