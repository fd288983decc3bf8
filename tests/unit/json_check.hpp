// tests/unit/json_check.hpp: a strict RFC 8259 JSON reader for tests of the JSON log lines: a
// line parses only if it is one valid JSON value in valid UTF-8 (no raw control bytes, escapes
// well-formed, surrogates paired). Header-only; shared by the unit and logging suites.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jsoncheck {

struct Value {
  enum Type { null, boolean, number, string, array, object } type = null;
  bool b = false;
  double n = 0;
  std::string s;
  std::vector<Value> a;
  std::map<std::string, Value> o;
  bool duplicate_key = false;  // an object repeated a key (JSON allows it; our lines must not)

  const Value *get(const std::string &k) const {
    auto it = o.find(k);
    return type == object && it != o.end() ? &it->second : nullptr;
  }
  bool has(const std::string &k) const { return get(k) != nullptr; }
  std::string str(const std::string &k) const {
    const Value *v = get(k);
    return v && v->type == string ? v->s : std::string("<not a string>");
  }
  double num(const std::string &k) const {
    const Value *v = get(k);
    return v && v->type == number ? v->n : -1e300;
  }
};

class Reader {
 public:
  explicit Reader(std::string_view t) : t_(t) {}

  std::optional<Value> document() {
    Value v;
    ws();
    if (!value(v, 0)) return std::nullopt;
    ws();
    if (i_ != t_.size()) return std::nullopt;
    return v;
  }

 private:
  bool eof() const { return i_ >= t_.size(); }
  char peek() const { return eof() ? '\0' : t_[i_]; }
  void ws() {
    while (!eof() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\n' || t_[i_] == '\r')) ++i_;
  }
  bool lit(std::string_view w) {
    if (t_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }

  bool value(Value &v, int depth) {
    if (depth > 64) return false;
    char c = peek();
    if (c == '{') return obj(v, depth);
    if (c == '[') return arr(v, depth);
    if (c == '"') {
      v.type = Value::string;
      return str(v.s);
    }
    if (lit("true")) return v.type = Value::boolean, v.b = true, true;
    if (lit("false")) return v.type = Value::boolean, v.b = false, true;
    if (lit("null")) return v.type = Value::null, true;
    return num(v);
  }

  bool obj(Value &v, int depth) {
    v.type = Value::object;
    ++i_;
    ws();
    if (peek() == '}') return ++i_, true;
    for (;;) {
      ws();
      std::string k;
      if (peek() != '"' || !str(k)) return false;
      ws();
      if (peek() != ':') return false;
      ++i_;
      ws();
      Value m;
      if (!value(m, depth + 1)) return false;
      if (v.o.count(k)) v.duplicate_key = true;
      v.o[k] = std::move(m);
      ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() == '}') return ++i_, true;
      return false;
    }
  }

  bool arr(Value &v, int depth) {
    v.type = Value::array;
    ++i_;
    ws();
    if (peek() == ']') return ++i_, true;
    for (;;) {
      ws();
      Value m;
      if (!value(m, depth + 1)) return false;
      v.a.push_back(std::move(m));
      ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() == ']') return ++i_, true;
      return false;
    }
  }

  bool num(Value &v) {
    size_t start = i_;
    if (peek() == '-') ++i_;
    if (peek() == '0') {
      ++i_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++i_;
    } else {
      return false;
    }
    if (peek() == '.') {
      ++i_;
      if (!(peek() >= '0' && peek() <= '9')) return false;
      while (peek() >= '0' && peek() <= '9') ++i_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!(peek() >= '0' && peek() <= '9')) return false;
      while (peek() >= '0' && peek() <= '9') ++i_;
    }
    v.type = Value::number;
    v.n = strtod(std::string(t_.substr(start, i_ - start)).c_str(), nullptr);
    return true;
  }

  bool hex4(uint32_t &out) {
    if (i_ + 4 > t_.size()) return false;
    out = 0;
    for (int k = 0; k < 4; ++k) {
      char c = t_[i_++];
      out <<= 4;
      if (c >= '0' && c <= '9')
        out |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        out |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        out |= static_cast<uint32_t>(c - 'A' + 10);
      else
        return false;
    }
    return true;
  }

  static void put_utf8(std::string &s, uint32_t cp) {
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // One raw UTF-8 sequence (RFC 3629) copied to out; false if malformed.
  bool utf8(std::string &out) {
    auto c = static_cast<unsigned char>(t_[i_]);
    size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (n == 0 || c > 0xF4 || i_ + n > t_.size()) return false;
    auto b = [&](size_t k) { return static_cast<unsigned char>(t_[i_ + k]); };
    for (size_t k = 1; k < n; ++k)
      if ((b(k) & 0xC0) != 0x80) return false;
    if ((c == 0xE0 && b(1) < 0xA0) || (c == 0xED && b(1) > 0x9F) || (c == 0xF0 && b(1) < 0x90) ||
        (c == 0xF4 && b(1) > 0x8F))
      return false;
    out.append(t_.substr(i_, n));
    i_ += n;
    return true;
  }

  bool str(std::string &out) {
    ++i_;  // opening quote
    for (;;) {
      if (eof()) return false;
      auto c = static_cast<unsigned char>(t_[i_]);
      if (c == '"') return ++i_, true;
      if (c < 0x20) return false;
      if (c != '\\') {
        if (!utf8(out)) return false;
        continue;
      }
      ++i_;
      if (eof()) return false;
      char e = t_[i_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (!lit("\\u") || !hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default:
          return false;
      }
    }
  }

  std::string_view t_;
  size_t i_ = 0;
};

inline std::optional<Value> parse(std::string_view text) {
  return Reader(text).document();
}

}  // namespace jsoncheck
