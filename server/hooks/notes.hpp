// hooks/notes.hpp: connection and transaction notes: string values, or pointers with a destructor.
// The map is made by the first note set: reading an empty Notes allocates nothing, and an empty
// one is a pointer (every session carries two).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace uvs {

class Notes {
 public:
  Notes() = default;
  Notes(const Notes &) = delete;
  Notes &operator=(const Notes &) = delete;
  ~Notes() { clear(); }

  void set(std::string_view key, std::string_view value);
  const std::string *get(std::string_view key) const;  // nullptr if absent or a pointer note
  void set_ptr(std::string_view key, void *ptr, void (*dtor)(void *));
  void *get_ptr(std::string_view key) const;
  void erase(std::string_view key);
  void clear();

 private:
  struct Value {
    std::string str;
    void *ptr = nullptr;
    void (*dtor)(void *) = nullptr;
    bool is_ptr = false;
  };
  using Map = std::map<std::string, Value, std::less<>>;
  static void release(Value &v);
  Map &map();  // made on first use
  std::unique_ptr<Map> map_;
};

}  // namespace uvs
