// tests/unit/test_command.cpp: unit tests for smtp/command (verb split, command text check).
#include <doctest/doctest.h>

#include <string>

#include "smtp/command.hpp"

using uvs::smtp::split_command;
using uvs::smtp::valid_command_text;

TEST_CASE("command: verb is lower-cased and argument follows the spaces") {
  const auto c = split_command("MAIL FROM:<a@b.example> SIZE=10");
  CHECK(c.verb == "mail");
  CHECK(c.arg == "FROM:<a@b.example> SIZE=10");
  CHECK(c.valid_verb);
}

TEST_CASE("command: verb without argument") {
  const auto c = split_command("QUIT");
  CHECK(c.verb == "quit");
  CHECK(c.arg.empty());
  CHECK(c.valid_verb);
}

TEST_CASE("command: a run of spaces after the verb is skipped, trailing blanks kept") {
  const auto c = split_command("EhLo    host.example  \t");
  CHECK(c.verb == "ehlo");
  CHECK(c.arg == "host.example  \t");
  CHECK(c.valid_verb);

  const auto only_spaces = split_command("NOOP   ");
  CHECK(only_spaces.verb == "noop");
  CHECK(only_spaces.arg.empty());
}

TEST_CASE("command: inner spacing of the argument is untouched") {
  CHECK(split_command("HELP  a  b").arg == "a  b");
}

TEST_CASE("command: empty line") {
  const auto c = split_command("");
  CHECK(c.verb.empty());
  CHECK(c.arg.empty());
  CHECK_FALSE(c.valid_verb);
}

TEST_CASE("command: line starting with a space has no verb") {
  const auto c = split_command("  MAIL FROM:<a@b>");
  CHECK(c.verb.empty());
  CHECK_FALSE(c.valid_verb);
  CHECK(c.arg == "MAIL FROM:<a@b>");

  const auto blank = split_command("   ");
  CHECK(blank.verb.empty());
  CHECK(blank.arg.empty());
  CHECK_FALSE(blank.valid_verb);
}

TEST_CASE("command: verb length boundary is 12") {
  CHECK(split_command("ABCDEFGHIJKL").valid_verb);
  CHECK(split_command("abcdefghijkl x").valid_verb);
  const auto c = split_command("ABCDEFGHIJKLM arg");
  CHECK_FALSE(c.valid_verb);
  CHECK(c.verb == "abcdefghijklm");
  CHECK(c.arg == "arg");
}

TEST_CASE("command: verb characters are [A-Za-z0-9_]") {
  CHECK(split_command("X_FOO1").valid_verb);
  CHECK(split_command("_").valid_verb);
  CHECK(split_command("1").valid_verb);
  CHECK_FALSE(split_command("MAIL:").valid_verb);
  CHECK_FALSE(split_command("X-FOO").valid_verb);
  CHECK_FALSE(split_command("GET/").valid_verb);
  CHECK_FALSE(split_command("MAIL\tFROM:<a@b>").valid_verb);
  CHECK_FALSE(split_command("caf\xC3\xA9").valid_verb);
}

TEST_CASE("command: non-ASCII verb bytes are kept as is") {
  const auto c = split_command("\xC3\x89TE x");
  CHECK(c.verb == "\xC3\x89te");
  CHECK_FALSE(c.valid_verb);
}

TEST_CASE("command: valid_command_text accepts ASCII, TAB and well-formed UTF-8") {
  CHECK(valid_command_text(""));
  CHECK(valid_command_text("MAIL FROM:<a@b.example>"));
  CHECK(valid_command_text("x\ty"));
  CHECK(valid_command_text("~ !"));
  CHECK(valid_command_text("\xC2\x80"));          // U+0080, smallest 2-byte
  CHECK(valid_command_text("caf\xC3\xA9"));       // U+00E9
  CHECK(valid_command_text("\xDF\xBF"));          // U+07FF
  CHECK(valid_command_text("\xE0\xA0\x80"));      // U+0800, smallest 3-byte
  CHECK(valid_command_text("\xE2\x82\xAC"));      // U+20AC
  CHECK(valid_command_text("\xED\x9F\xBF"));      // U+D7FF, just below surrogates
  CHECK(valid_command_text("\xEE\x80\x80"));      // U+E000, just above surrogates
  CHECK(valid_command_text("\xEF\xBF\xBF"));      // U+FFFF
  CHECK(valid_command_text("\xF0\x90\x80\x80"));  // U+10000, smallest 4-byte
  CHECK(valid_command_text("\xF0\x9F\x98\x80"));  // U+1F600
  CHECK(valid_command_text("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  CHECK(valid_command_text("RCPT TO:<\xE7\x94\xA8\xE6\x88\xB7@\xE4\xBE\x8B.cn>"));
}

TEST_CASE("command: valid_command_text rejects control characters and DEL") {
  CHECK_FALSE(valid_command_text(std::string("a\0b", 3)));
  CHECK_FALSE(valid_command_text("a\rb"));
  CHECK_FALSE(valid_command_text("a\nb"));
  CHECK_FALSE(valid_command_text("\x01"));
  CHECK_FALSE(valid_command_text("\x1B[0m"));
  CHECK_FALSE(valid_command_text("\x1F"));
  CHECK_FALSE(valid_command_text("a\x7F"));
}

TEST_CASE("command: valid_command_text rejects malformed UTF-8") {
  CHECK_FALSE(valid_command_text("\x80"));  // lone continuation
  CHECK_FALSE(valid_command_text("\xBF"));
  CHECK_FALSE(valid_command_text("\xC3"));      // truncated 2-byte
  CHECK_FALSE(valid_command_text("\xC3x"));     // bad continuation
  CHECK_FALSE(valid_command_text("\xE2\x82"));  // truncated 3-byte
  CHECK_FALSE(valid_command_text("\xE2\x82x"));
  CHECK_FALSE(valid_command_text("\xF0\x9F\x98"));  // truncated 4-byte
  CHECK_FALSE(valid_command_text("\xF0\x9F\x98x"));
  CHECK_FALSE(valid_command_text("\xFE"));
  CHECK_FALSE(valid_command_text("\xFF"));
}

TEST_CASE("command: valid_command_text rejects overlongs, surrogates and > U+10FFFF") {
  CHECK_FALSE(valid_command_text("\xC0\xAF"));          // overlong '/'
  CHECK_FALSE(valid_command_text("\xC1\xBF"));          // overlong U+007F
  CHECK_FALSE(valid_command_text("\xC0\x80"));          // overlong NUL
  CHECK_FALSE(valid_command_text("\xE0\x80\xAF"));      // overlong 3-byte
  CHECK_FALSE(valid_command_text("\xE0\x9F\xBF"));      // overlong U+07FF
  CHECK_FALSE(valid_command_text("\xF0\x80\x80\xAF"));  // overlong 4-byte
  CHECK_FALSE(valid_command_text("\xF0\x8F\xBF\xBF"));  // overlong U+FFFF
  CHECK_FALSE(valid_command_text("\xED\xA0\x80"));      // U+D800
  CHECK_FALSE(valid_command_text("\xED\xBF\xBF"));      // U+DFFF
  CHECK_FALSE(valid_command_text("\xF4\x90\x80\x80"));  // U+110000
  CHECK_FALSE(valid_command_text("\xF5\x80\x80\x80"));
  CHECK_FALSE(valid_command_text("\xF8\x88\x80\x80\x80"));  // 5-byte form
}
