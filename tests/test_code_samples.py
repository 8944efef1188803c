"""Small source files in every language the code compressor has a grammar for (shared by tests)."""

PYTHON = '''"""A module with a class, functions and mixed scripts: 数据 — بيانات — 🚀."""
import os
from collections import OrderedDict

LIMIT = 10


@staticmethod
def helper(value):
    """Return the value doubled (二倍)."""
    total = value * 2
    if total > LIMIT:
        total = LIMIT
    return total


class Store(OrderedDict):
    """A store that keeps items in order."""

    kind = "store"

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.hits = 0

    def load(self, name):
        # Load a named item: 读取 🚀
        full = os.path.join(self.path, name)
        self.hits += 1
        with open(full) as handle:
            data = handle.read()
        return data.strip()

    def save(self, name, data): return helper(len(data))


def main():
    store = Store("/tmp")
    print(store.load("x"), "مرحبا")
'''

JAVASCRIPT = '''import fs from "fs";
const LIMIT = 10;

export function helper(value) {
  const total = value * 2;
  if (total > LIMIT) { return LIMIT; }
  return total;
}

const arrow = (a, b) => {
  const sum = a + b;
  return sum * 2;
};

class Store extends Base {
  constructor(path) { super(); this.path = path; }
  load(name) {
    const full = this.path + "/" + name; // 读取 🚀
    return fs.readFileSync(full, "utf8").trim();
  }
}
'''

TYPESCRIPT = '''import { readFileSync } from "fs";

interface Item { name: string; size: number }

export function helper(value: number): number {
  const total = value * 2;
  return total > 10 ? 10 : total;
}

export class Store {
  private hits = 0;
  constructor(private path: string) {}
  load(name: string): string {
    this.hits += 1;
    const full = `${this.path}/${name}`; // مرحبا
    return readFileSync(full, "utf8").trim();
  }
}
'''

JAVA = '''package demo;

import java.util.List;

public class Store {
    private final String path;
    private int hits = 0;

    public Store(String path) {
        this.path = path;
    }

    public String load(String name) {
        hits += 1;
        String full = path + "/" + name; // 数据 🚀
        return full.trim();
    }

    static int helper(int value) { int total = value * 2; return total; }
}
'''

GO = '''package main

import (
	"fmt"
	"strings"
)

type Store struct {
	path string
	hits int
}

func helper(value int) int {
	total := value * 2
	if total > 10 {
		return 10
	}
	return total
}

func (s *Store) Load(name string) string {
	s.hits++
	full := s.path + "/" + name // 数据 🚀
	return strings.TrimSpace(full)
}

func main() { fmt.Println(helper(3)) }
'''

RUST = '''use std::fs;

pub struct Store {
    path: String,
    hits: u32,
}

impl Store {
    pub fn new(path: &str) -> Store {
        Store { path: path.to_string(), hits: 0 }
    }

    pub fn load(&mut self, name: &str) -> String {
        self.hits += 1;
        let full = format!("{}/{}", self.path, name); // 数据 🚀
        fs::read_to_string(full).unwrap_or_default()
    }
}

fn helper(value: i32) -> i32 {
    let total = value * 2;
    if total > 10 { 10 } else { total }
}
'''

C = '''#include <stdio.h>
#include <string.h>

struct store { const char *path; int hits; };

static int helper(int value) {
    int total = value * 2;
    if (total > 10) {
        total = 10;
    }
    return total;
}

int load(struct store *s, const char *name) {
    s->hits += 1;
    printf("%s/%s\\n", s->path, name); /* 数据 🚀 */
    return (int) strlen(name);
}
'''

CPP = '''#include <string>
#include <vector>

namespace demo {

class Store {
 public:
  explicit Store(std::string path) : path_(path) {}
  std::string load(const std::string& name) {
    hits_ += 1;
    std::string full = path_ + "/" + name;  // 数据 🚀
    return full;
  }
 private:
  std::string path_;
  int hits_ = 0;
};

template <class T> T helper(T value) {
  T total = value * 2;
  return total;
}

}  // namespace demo
'''

SAMPLES = {
    "python": ("store.py", PYTHON),
    "javascript": ("store.js", JAVASCRIPT),
    "typescript": ("store.ts", TYPESCRIPT),
    "java": ("Store.java", JAVA),
    "go": ("store.go", GO),
    "rust": ("store.rs", RUST),
    "c": ("store.c", C),
    "cpp": ("store.cpp", CPP),
}


def test_every_sample_is_valid_code_in_its_language():
    from ctxzip.code_analysis.languages import language_for_path
    from ctxzip.code_analysis.render import parses

    for language, (path, source) in SAMPLES.items():
        assert language_for_path(path) == language and parses(source, language)
    assert not parses(PYTHON + "\ndef broken(:\n", "python")  # the check can fail
