# Extracts English prose sentences from documentation already on this machine (no network):
# license texts, Debian copyright files, Python stdlib docstrings, man pages (troff stripped)
# and the gzip'd docs under /usr/share/doc. Writes one sentence per line to argv[1],
# deduplicated, 5-60 words. pinak-bench runs this once and caches the output.
import glob
import gzip
import re
import sys
import sysconfig

SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")
TROFF_ESC = re.compile(r"\\f[BIRPC]|\\f\(..|\\\(..|\\\*.|\\[-&e|^]|\\s[-+]?\d")
TROFF_FONT = re.compile(r"^\.(B|I|BR|IR|RB|RI|BI|IB|SM|SB)\s+")

seen = set()
out = []


def add(text):
    text = re.sub(r"\s+", " ", text)
    for s in SPLIT.split(text):
        s = s.strip()
        words = s.split()
        if not (5 <= len(words) <= 60) or s[-1:] not in ".!?":
            continue
        letters = sum(c.isalpha() for c in s)
        if letters < 0.6 * len(s) or not s[0].isupper():
            continue
        key = s.lower()
        if key in seen:
            continue
        seen.add(key)
        out.append(s)


def read(path, gz=False):
    try:
        if gz:
            with gzip.open(path, "rt", errors="ignore") as f:
                return f.read()
        with open(path, errors="ignore") as f:
            return f.read()
    except Exception:
        return ""


def troff(text):
    lines = []
    for line in text.splitlines():
        if line.startswith((".", "'")):
            line = TROFF_FONT.sub("", line)
            if line.startswith((".", "'")):
                continue
        lines.append(TROFF_ESC.sub("", line).replace('"', ""))
    return " ".join(lines)


for f in sorted(glob.glob("/usr/share/common-licenses/*")):
    add(read(f))
for f in sorted(glob.glob("/usr/share/doc/*/copyright")):
    add(read(f))
stdlib = sysconfig.get_paths()["stdlib"]
for f in sorted(glob.glob(stdlib + "/**/*.py", recursive=True)):
    if "/test" in f or "site-packages" in f:
        continue
    for m in re.finditer(r'"""(.*?)"""', read(f), re.S):
        add(m.group(1))
for f in sorted(glob.glob("/usr/share/man/man*/*.gz")):
    add(troff(read(f, gz=True)))
for f in sorted(glob.glob("/usr/share/doc/**/*.gz", recursive=True)):
    add(read(f, gz=True))
for f in sorted(glob.glob("/usr/share/doc/**/*.txt", recursive=True)):
    add(read(f))

with open(sys.argv[1], "w") as f:
    for s in out:
        f.write(s.replace("\n", " ") + "\n")
print(len(out))
