// metrics/exposition.cpp: the text format's writer helpers and the sum of expositions (see
// exposition.hpp).
#include "metrics/exposition.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <list>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

namespace uvs::metrics {

std::string escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::trunc(v) && std::fabs(v) < 9.0e15) return std::to_string(static_cast<int64_t>(v));
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

void family_head(std::string &out, std::string_view name, std::string_view type,
                 std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

namespace {
void sample_start(std::string &out, std::string_view name, std::string_view labels) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
}
}  // namespace

void sample(std::string &out, std::string_view name, std::string_view labels, double v) {
  sample_start(out, name, labels);
  out += format_value(v);
  out += '\n';
}

void sample(std::string &out, std::string_view name, std::string_view labels, uint64_t v) {
  sample_start(out, name, labels);
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
  out += '\n';
}

// ---- sum ------------------------------------------------------------------------------------

namespace {

bool name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool name_char(char c) {
  return name_start(c) || (c >= '0' && c <= '9');
}
bool blank(char c) {
  return c == ' ' || c == '\t';
}

void skip_blanks(std::string_view s, size_t &i) {
  while (i < s.size() && blank(s[i])) ++i;
}

std::string_view take_name(std::string_view s, size_t &i) {
  size_t b = i;
  if (i >= s.size() || !name_start(s[i])) return {};
  while (i < s.size() && name_char(s[i])) ++i;
  return s.substr(b, i - b);
}

bool parse_value(std::string_view t, double &v) {
  if (t == "+Inf" || t == "Inf") {
    v = HUGE_VAL;
    return true;
  }
  if (t == "-Inf") {
    v = -HUGE_VAL;
    return true;
  }
  if (t == "NaN") {
    v = NAN;
    return true;
  }
  if (t.empty() || t.size() > 64) return false;
  std::string z(t);
  char *end = nullptr;
  v = strtod(z.c_str(), &end);
  return end == z.c_str() + z.size();
}

struct ParsedSample {
  std::string_view name;
  std::string_view labels_text;  // between the braces
  std::string key;               // name, then the labels sorted by name
  std::string series;            // the labels without `le`, sorted
  double value = 0;
};

// name{a="x",b="y"} value [timestamp]
bool parse_sample(std::string_view line, ParsedSample &out) {
  size_t i = 0;
  out.name = take_name(line, i);
  if (out.name.empty()) return false;
  std::vector<std::pair<std::string_view, std::string_view>> labels;  // name, escaped value
  size_t after_name = i;
  skip_blanks(line, i);
  if (i < line.size() && line[i] == '{') {
    size_t open = ++i;
    for (;;) {
      skip_blanks(line, i);
      if (i < line.size() && line[i] == '}') break;
      std::string_view ln = take_name(line, i);
      if (ln.empty()) return false;
      skip_blanks(line, i);
      if (i >= line.size() || line[i] != '=') return false;
      ++i;
      skip_blanks(line, i);
      if (i >= line.size() || line[i] != '"') return false;
      size_t vb = ++i;
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '\\') {
          if (i + 1 >= line.size()) return false;
          ++i;
        }
        ++i;
      }
      if (i >= line.size()) return false;
      labels.emplace_back(ln, line.substr(vb, i - vb));
      ++i;  // the closing quote
      skip_blanks(line, i);
      if (i < line.size() && line[i] == ',') {
        ++i;
        continue;
      }
      skip_blanks(line, i);
      if (i < line.size() && line[i] == '}') break;
      return false;
    }
    out.labels_text = line.substr(open, i - open);
    ++i;  // '}'
  } else {
    i = after_name;
  }
  if (i >= line.size() || !blank(line[i])) return false;
  skip_blanks(line, i);
  size_t vb = i;
  while (i < line.size() && !blank(line[i])) ++i;
  if (!parse_value(line.substr(vb, i - vb), out.value)) return false;
  skip_blanks(line, i);
  if (i < line.size()) {  // a timestamp: an integer, dropped
    size_t tb = i;
    if (line[i] == '-') ++i;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9') ++i;
    if (i == tb || i != line.size()) return false;
  }
  std::sort(labels.begin(), labels.end());
  for (size_t k = 1; k < labels.size(); ++k)
    if (labels[k].first == labels[k - 1].first) return false;  // a label twice
  out.key.assign(out.name);
  out.series.clear();
  for (const auto &[n, v] : labels) {
    std::string part;
    part.reserve(n.size() + v.size() + 2);
    part.append(n).append("=").append(v).append(1, '\0');
    out.key += '\0';
    out.key += part;
    if (n != "le") out.series += part;
  }
  return true;
}

struct Sample {
  std::string name;
  std::string labels_text;
  std::string series;
  double value;
};

struct Family {
  std::string name, help, type;
  bool has_help = false, has_type = false;
  std::list<Sample> samples;
  std::unordered_map<std::string, std::list<Sample>::iterator> last_of_series, last_by_name;
};

class Summer {
 public:
  void add(std::string_view text, size_t &skipped) {
    current_ = nullptr;
    while (!text.empty()) {
      size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      size_t i = 0;
      skip_blanks(line, i);
      line.remove_prefix(i);
      if (line.empty()) continue;
      if (line[0] == '#') {
        if (!comment(line)) ++skipped;
        continue;
      }
      ParsedSample p;
      if (!parse_sample(line, p)) {
        ++skipped;
        continue;
      }
      add_sample(p);
    }
  }

  std::string text() const {
    std::string out;
    for (const auto &f : families_) {
      if (f->has_help) out += "# HELP " + f->name + " " + f->help + "\n";
      if (f->has_type) out += "# TYPE " + f->name + " " + f->type + "\n";
      for (const auto &s : f->samples) sample(out, s.name, s.labels_text, s.value);
    }
    return out;
  }

 private:
  // "# HELP name text" / "# TYPE name type"; other comments are ignored (true).
  bool comment(std::string_view line) {
    size_t i = 1;
    skip_blanks(line, i);
    std::string_view word = take_name(line, i);
    if (word != "HELP" && word != "TYPE") return true;
    skip_blanks(line, i);
    std::string_view name = take_name(line, i);
    if (name.empty()) return false;
    std::string_view rest;
    if (i < line.size()) {
      if (!blank(line[i])) return false;
      rest = line.substr(i + 1);
    }
    Family *f = family(name);
    if (word == "HELP" && !f->has_help) {
      f->help.assign(rest);
      f->has_help = true;
    } else if (word == "TYPE") {
      while (!rest.empty() && blank(rest.back())) rest.remove_suffix(1);
      if (rest.empty()) return false;
      if (!f->has_type) {
        f->type.assign(rest);
        f->has_type = true;
      }
    }
    current_ = f;
    return true;
  }

  Family *family(std::string_view name) {
    auto it = by_name_.find(std::string(name));
    if (it != by_name_.end()) return it->second;
    families_.push_back(std::make_unique<Family>());
    Family *f = families_.back().get();
    f->name.assign(name);
    by_name_.emplace(f->name, f);
    return f;
  }

  static bool has_suffix_of(std::string_view name, const Family &f) {
    if (f.type != "histogram" && f.type != "summary") return false;
    if (name.size() <= f.name.size() || name.substr(0, f.name.size()) != f.name) return false;
    std::string_view suffix = name.substr(f.name.size());
    return suffix == "_sum" || suffix == "_count" || (f.type == "histogram" && suffix == "_bucket");
  }

  Family *family_of(std::string_view name) {
    if (current_ && (name == current_->name || has_suffix_of(name, *current_))) return current_;
    if (auto it = by_name_.find(std::string(name)); it != by_name_.end()) return it->second;
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (name.size() <= suffix.size() || !name.ends_with(suffix)) continue;
      auto it = by_name_.find(std::string(name.substr(0, name.size() - suffix.size())));
      if (it != by_name_.end() && has_suffix_of(name, *it->second)) return it->second;
    }
    return family(name);  // untyped, no HELP or TYPE
  }

  void add_sample(const ParsedSample &p) {
    auto hit = by_key_.find(p.key);
    if (hit != by_key_.end()) {
      hit->second->value += p.value;
      return;
    }
    Family *f = family_of(p.name);
    // After the last sample of the same series with the same name, else after the last of the
    // same series, else at the end of the family.
    std::string name_key = p.series + '\x01' + std::string(p.name);
    auto by_name = f->last_by_name.find(name_key);
    auto by_series = f->last_of_series.find(p.series);
    auto pos = f->samples.end();
    bool series_last = true;  // the new sample becomes the series' last
    if (by_name != f->last_by_name.end()) {
      pos = std::next(by_name->second);
      series_last = by_series != f->last_of_series.end() && by_series->second == by_name->second;
    } else if (by_series != f->last_of_series.end()) {
      pos = std::next(by_series->second);
    }
    auto it = f->samples.insert(
        pos, Sample{std::string(p.name), std::string(p.labels_text), p.series, p.value});
    f->last_by_name[name_key] = it;
    if (series_last) f->last_of_series[p.series] = it;
    by_key_.emplace(p.key, it);
  }

  std::vector<std::unique_ptr<Family>> families_;
  std::unordered_map<std::string, Family *> by_name_;
  std::unordered_map<std::string, std::list<Sample>::iterator> by_key_;
  Family *current_ = nullptr;
};

}  // namespace

std::string sum(std::span<const std::string> expositions, size_t *skipped) {
  Summer s;
  size_t bad = 0;
  for (const auto &e : expositions) s.add(e, bad);
  if (skipped) *skipped = bad;
  return s.text();
}

}  // namespace uvs::metrics
