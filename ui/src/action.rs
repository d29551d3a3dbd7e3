//! What the operator can ask for: keys become [`Action`]s through the key table,
//! and [`crate::App::update`] runs them. Neither this type nor the key table knows
//! how the dashboard is drawn.

use crossterm::event::KeyEvent;

use crate::view::View;

/// Everything a key can ask the dashboard to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Leave the dashboard.
    Quit,
    /// Open the help overlay.
    Help,
    /// Switch to a view.
    ShowView(View),
    /// Switch to the next view.
    NextView,
    /// Switch to the previous view.
    PrevView,
    /// Select the next row, or scroll a popup down.
    Down,
    /// Select the previous row, or scroll a popup up.
    Up,
    /// Down a page.
    PageDown,
    /// Up a page.
    PageUp,
    /// The first row, or the top of a popup.
    Top,
    /// The last row, or the bottom of a popup.
    Bottom,
    /// Start typing a filter for the current table.
    Filter,
    /// Stop typing the filter and keep it.
    ApplyFilter,
    /// Stop typing the filter and clear it.
    ClearFilter,
    /// Back one level: close the command line, clear a kept filter, or go back
    /// to the view shown before (the rule is [`crate::App::back`]'s).
    Back,
    /// Open the `:` command line.
    CommandLine,
    /// Run the command typed.
    RunCommand,
    /// Complete the command line's last word.
    Complete,
    /// The command line's previous (older) command.
    HistoryBack,
    /// The command line's next (newer) command.
    HistoryForward,
    /// Freeze the tables (the source is still polled), or resume them.
    Pause,
    /// Sort by the next column.
    SortNext,
    /// Reverse the sort.
    SortReverse,
    /// Sort the clients by their outbound buffer's fill, fullest first.
    SortFullest,
    /// Open the selected row: tail a topic, peek a queue, detail a client.
    Open,
    /// Open the publish form for the selected topic or queue.
    Publish,
    /// Ask to purge the selected queue.
    Purge,
    /// Ask to kick the selected client.
    Kick,
    /// Ask to kick every slow client.
    KickSlow,
    /// Requeue the selected in-flight job now.
    Requeue,
    /// Ask to purge every queue the Queues filter lists.
    PurgeListed,
    /// Ask to requeue every job the In-flight filter lists.
    RequeueListed,
    /// Ask to kick every client the Clients filter lists.
    KickListed,
    /// Ask to requeue every job of the selected job's consumer.
    RequeueConsumer,
    /// Ask to move the peeked dead-letter queue's messages back to the queue
    /// they died in.
    MoveBack,
    /// Ask to move the selected dead letter of the peek back where it died.
    MoveOne,
    /// Ask to drop the peek's selected message.
    DropMessage,
    /// Type a search (a filter, or a substring) for the peek or the tail.
    Search,
    /// Write what the peek or the tail shows to a JSON Lines file.
    Export,
    /// Yes, in a confirm dialog.
    Confirm,
    /// No, in a confirm dialog; cancel, in the publish form.
    Cancel,
    /// Send the publish form.
    Submit,
    /// Move to the publish form's next field.
    FocusNext,
    /// Move to the publish form's previous field.
    FocusPrev,
    /// Close a popup.
    Close,
    /// The peek popup's next page of messages.
    NextPage,
    /// The peek popup's previous page of messages.
    PrevPage,
    /// A key typed into the focused text field (filter or form).
    Type(KeyEvent),
}

impl Action {
    /// Whether the action changes the broker (a read-only console refuses it and
    /// hides its key); looking (peek, tail, stats) does not.
    pub fn changes_broker(self) -> bool {
        matches!(
            self,
            Action::Publish
                | Action::Purge
                | Action::Kick
                | Action::KickSlow
                | Action::Requeue
                | Action::RequeueConsumer
                | Action::MoveBack
                | Action::MoveOne
                | Action::DropMessage
                | Action::PurgeListed
                | Action::RequeueListed
                | Action::KickListed
        )
    }
}
