// The CSV/TSV reader (data/csv.h) on small tables written here: RFC 4180 quoting (delimiters,
// doubled quotes and line breaks inside quotes), CRLF, a UTF-8 byte-order mark, TSV, blank
// lines, and the errors (ragged rows, unterminated quotes, invalid UTF-8, a missing file or
// column) that name the file and the line.
#include "moxing/data/csv.h"

#include <gtest/gtest.h>

#include <fstream>

#include "model_checks.h"
#include "op_harness.h"

using namespace moxing;
using moxing::testing::contains;
using moxing::testing::error_of;
using moxing::testing::TempDir;
using Rows = std::vector<std::vector<std::string>>;

TEST(Csv, PlainRowsAndLineNumbers) {
  data::CsvTable t = data::parse_csv("text,label\nhello,pos\nbye,neg\n", "t.csv");
  EXPECT_EQ(t.name, "t.csv");
  EXPECT_EQ(t.header, (std::vector<std::string>{"text", "label"}));
  EXPECT_EQ(t.rows, (Rows{{"hello", "pos"}, {"bye", "neg"}}));
  EXPECT_EQ(t.lines, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.column("label"), 1u);
  // no final line end; empty fields are kept
  t = data::parse_csv("a,b,c\n,x,\n1,2,3", "t.csv");
  EXPECT_EQ(t.rows, (Rows{{"", "x", ""}, {"1", "2", "3"}}));
}

TEST(Csv, QuotedFieldsHoldDelimitersQuotesAndLineBreaks) {
  const std::string text =
      "text,label\n"
      "\"one, two\",a\n"
      "\"she said \"\"hi\"\"\",b\n"
      "\"line one\nline two\",c\n"
      "\"\",d\n"
      "plain \"inner\" quotes,e\n";
  data::CsvTable t = data::parse_csv(text, "q.csv");
  EXPECT_EQ(t.rows, (Rows{{"one, two", "a"},
                          {"she said \"hi\"", "b"},
                          {"line one\nline two", "c"},
                          {"", "d"},
                          {"plain \"inner\" quotes", "e"}}));
  // a row starts on the line of its first field; the line break inside quotes is counted
  EXPECT_EQ(t.lines, (std::vector<int64_t>{2, 3, 4, 6, 7}));
  // a quoted header cell
  t = data::parse_csv("\"te,xt\",label\nx,y\n", "h.csv");
  EXPECT_EQ(t.column("te,xt"), 0u);
}

TEST(Csv, CrlfLineEndsAndBlankLines) {
  data::CsvTable t = data::parse_csv("text,label\r\nhello,pos\r\n\r\n\nbye,neg\r\n", "w.csv");
  EXPECT_EQ(t.header, (std::vector<std::string>{"text", "label"}));
  EXPECT_EQ(t.rows, (Rows{{"hello", "pos"}, {"bye", "neg"}}));  // no '\r' left in a field
  EXPECT_EQ(t.lines, (std::vector<int64_t>{2, 5}));
  // inside quotes a CRLF is part of the field, as Python's csv module keeps it
  t = data::parse_csv("a,b\r\n\"x\r\ny\",z\r\n", "w.csv");
  EXPECT_EQ(t.rows, (Rows{{"x\r\ny", "z"}}));
}

TEST(Csv, ByteOrderMarkIsNotPartOfTheFirstColumn) {
  // the BOM once shifted the first column's name, so column("text") missed it
  data::CsvTable t = data::parse_csv("\xEF\xBB\xBFtext,label\nhello,pos\n", "bom.csv");
  EXPECT_EQ(t.header[0], "text");
  EXPECT_EQ(t.column("text"), 0u);
  EXPECT_EQ(t.column("label"), 1u);
  EXPECT_EQ(t.rows, (Rows{{"hello", "pos"}}));
  EXPECT_EQ(t.lines, (std::vector<int64_t>{2}));
  // a quoted first header cell right after the BOM is still a quoted field
  t = data::parse_csv("\xEF\xBB\xBF\"text\",label\n\"a,b\",pos\n", "bom.csv");
  EXPECT_EQ(t.header, (std::vector<std::string>{"text", "label"}));
  EXPECT_EQ(t.rows, (Rows{{"a,b", "pos"}}));
  // with CRLF and TSV as spreadsheets write them
  t = data::parse_csv("\xEF\xBB\xBFtext\tlabel\r\nhi\tpos\r\n", "bom.tsv", '\t');
  EXPECT_EQ(t.column("text"), 0u);
  EXPECT_EQ(t.rows, (Rows{{"hi", "pos"}}));
  // the byte of invalid UTF-8 is counted in the file, the BOM included
  const std::string bad = std::string("\xEF\xBB\xBF") + "a,b\nok,\xff\n";
  std::string e = error_of([&] { data::parse_csv(bad, "bom.csv"); });
  EXPECT_TRUE(contains(e, "bom.csv:2: invalid UTF-8 at byte 10")) << e;
  e = error_of([] { data::parse_csv("a,b\nok,\xff\n", "plain.csv"); });
  EXPECT_TRUE(contains(e, "plain.csv:2: invalid UTF-8 at byte 7")) << e;
  // a BOM-only file is empty
  e = error_of([] { data::parse_csv("\xEF\xBB\xBF", "only_bom.csv"); });
  EXPECT_TRUE(contains(e, "only_bom.csv: the file is empty")) << e;
}

TEST(Csv, TabSeparatedKeepsCommas) {
  data::CsvTable t =
      data::parse_csv("text\tlabel\none, two\tpos\n\"tab\there\"\tneg\n", "t.tsv", '\t');
  EXPECT_EQ(t.rows, (Rows{{"one, two", "pos"}, {"tab\there", "neg"}}));
}

TEST(Csv, RaggedRowsAreErrorsNamingFileAndLine) {
  std::string e = error_of([] { data::parse_csv("a,b\n1,2\n1,2,3\n", "ragged.csv"); });
  EXPECT_TRUE(contains(e, "ragged.csv:3: 3 fields where the header has 2")) << e;
  EXPECT_TRUE(contains(e, "quote fields that hold ','")) << e;
  e = error_of([] { data::parse_csv("a,b\n1,2\n\nonly\n", "short.csv"); });
  EXPECT_TRUE(contains(e, "short.csv:4: 1 fields where the header has 2")) << e;
  // the line counts the line breaks inside earlier quoted fields
  e = error_of([] { data::parse_csv("a\tb\n\"x\ny\"\t1\nno tab\n", "r.tsv", '\t'); });
  EXPECT_TRUE(contains(e, "r.tsv:4: 1 fields where the header has 2")) << e;
  EXPECT_TRUE(contains(e, "quote fields that hold '\\t'")) << e;
}

TEST(Csv, UnterminatedQuotesAndStrayTextAreErrors) {
  std::string e = error_of([] { data::parse_csv("a,b\n1,2\n\"open,3\nmore\n", "open.csv"); });
  EXPECT_TRUE(contains(e, "open.csv:3: a quoted field is not closed")) << e;
  e = error_of([] { data::parse_csv("a,b\n\"x\"y,2\n", "stray.csv"); });
  EXPECT_TRUE(contains(e, "stray.csv:2: text after a closing quote")) << e;
}

TEST(Csv, InvalidUtf8AndEmptyFilesAreErrors) {
  std::string e = error_of([] { data::parse_csv("a,b\nok,1\nbad \xff,2\n", "u.csv"); });
  EXPECT_TRUE(contains(e, "u.csv:3: invalid UTF-8")) << e;
  e = error_of([] { data::parse_csv("", "empty.csv"); });
  EXPECT_TRUE(contains(e, "empty.csv: the file is empty")) << e;
  e = error_of([] { data::parse_csv("\n\n", "blank.csv"); });
  EXPECT_TRUE(contains(e, "blank.csv: the file is empty")) << e;
}

TEST(Csv, MissingColumnListsTheColumns) {
  data::CsvTable t = data::parse_csv("text,label\nx,y\n", "c.csv");
  std::string e = error_of([&] { t.column("sentence", "[data] text_column"); });
  EXPECT_TRUE(contains(e, "c.csv: no [data] text_column 'sentence' (the columns are: text, label)"))
      << e;
}

TEST(Csv, ReadsFilesByExtension) {
  TempDir dir("csv_files");
  std::ofstream(dir.path + "/t.csv", std::ios::binary) << "text,label\n\"a\tb\",1\n";
  std::ofstream(dir.path + "/t.tsv", std::ios::binary) << "text\tlabel\na,b\t1\n";
  data::CsvTable c = data::read_csv(dir.path + "/t.csv");
  EXPECT_EQ(c.name, dir.path + "/t.csv");
  EXPECT_EQ(c.rows, (Rows{{"a\tb", "1"}}));
  data::CsvTable t = data::read_csv(dir.path + "/t.tsv");
  EXPECT_EQ(t.rows, (Rows{{"a,b", "1"}}));
  std::string e = error_of([&] { data::read_csv(dir.path + "/none.csv"); });
  EXPECT_TRUE(contains(e, dir.path + "/none.csv: cannot open")) << e;
  // errors from a file name it
  std::ofstream(dir.path + "/bad.csv", std::ios::binary) << "a,b\n1\n";
  e = error_of([&] { data::read_csv(dir.path + "/bad.csv"); });
  EXPECT_TRUE(contains(e, dir.path + "/bad.csv:2:")) << e;
}
