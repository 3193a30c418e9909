# Shared by the fuzz scripts (sourced from the repository root): puts cargo-fuzz on PATH,
# installing it into ./target/tools the first time.
tools="$PWD/target/tools"
if ! command -v cargo-fuzz >/dev/null 2>&1 && [ ! -x "$tools/bin/cargo-fuzz" ]; then
  echo "installing cargo-fuzz into $tools (one time)"
  cargo install --quiet --locked --root "$tools" cargo-fuzz
fi
export PATH="$tools/bin:$PATH"
