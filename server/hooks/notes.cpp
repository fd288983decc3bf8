// hooks/notes.cpp: note storage; pointer notes run their destructor when replaced or cleared.
#include "hooks/notes.hpp"

namespace uvs {

void Notes::release(Value &v) {
  if (v.is_ptr && v.dtor && v.ptr) v.dtor(v.ptr);
  v.ptr = nullptr;
  v.dtor = nullptr;
  v.is_ptr = false;
}

Notes::Map &Notes::map() {
  if (!map_) map_ = std::make_unique<Map>();
  return *map_;
}

void Notes::set(std::string_view key, std::string_view value) {
  Map &m = map();
  auto it = m.find(key);
  if (it == m.end()) it = m.emplace(std::string(key), Value{}).first;
  release(it->second);
  it->second.str = std::string(value);
}

const std::string *Notes::get(std::string_view key) const {
  if (!map_) return nullptr;
  auto it = map_->find(key);
  if (it == map_->end() || it->second.is_ptr) return nullptr;
  return &it->second.str;
}

void Notes::set_ptr(std::string_view key, void *ptr, void (*dtor)(void *)) {
  Map &m = map();
  auto it = m.find(key);
  if (it == m.end()) it = m.emplace(std::string(key), Value{}).first;
  release(it->second);
  it->second.str.clear();
  it->second.ptr = ptr;
  it->second.dtor = dtor;
  it->second.is_ptr = true;
}

void *Notes::get_ptr(std::string_view key) const {
  if (!map_) return nullptr;
  auto it = map_->find(key);
  return (it == map_->end() || !it->second.is_ptr) ? nullptr : it->second.ptr;
}

void Notes::erase(std::string_view key) {
  if (!map_) return;
  auto it = map_->find(key);
  if (it == map_->end()) return;
  release(it->second);
  map_->erase(it);
}

void Notes::clear() {
  if (!map_) return;
  for (auto &kv : *map_) release(kv.second);
  map_->clear();
}

}  // namespace uvs
